"""The availability harness's clients: a closed loop on lean kept-alive HTTP/1.1 connections, out of process.

The harness measures what share of requests a server fails, so its clients must
not be what limits how many it sends. Through ``requests`` each request cost the
harness about 1.1 ms of CPU, as much as the server spent answering it, and eight
client threads in the harness's own process fought for one interpreter lock with
the code that kills workers and reads ``/proc``. Here each request's bytes are
built once (:func:`encode_post`), each answer is read straight from the socket,
and the clients run in a child process (:func:`main`), which streams what each
request did back to the harness as it goes.

A :class:`KeptAliveConnection` behaves as ``requests``' connection pool does, so
that outcomes mean the same: one connection kept alive per client; before it is
used again it is checked for having been closed by the server (readable with no
request out), and then replaced by a new one; a request that fails ends its
connection, and the next request opens a new one; nothing is retried. As
urllib3 does, a send cut short by a reset is not a failure in itself: the answer
is read, and what that read sees is the outcome. The outcome of a request is
its status code, or what the client saw instead:

- ``refused``: the connect itself was refused;
- ``reset`` or ``closed``: the connection was reset, or ended, before any byte
  of an answer;
- ``cut``: the answer had begun, and the connection ended or was reset before
  its end;
- ``timeout``: no answer within the timeout;
- ``other``: anything else (an answer that is not HTTP, a connect that failed
  otherwise).

A client process is started by :class:`ClientProcess` and reads its orders from
standard input; standard input closing tells it to stop.
"""

from __future__ import annotations

import dataclasses
import itertools
import marshal
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple

_FRAME = struct.Struct("!I")
#: How often a client process sends the records of the requests that ended since its last send.
SEND_EVERY_S = 0.02
_RECEIVE = 65536


class Record(NamedTuple):
    """One request: when it started and ended, its outcome, who answered, and on which connection."""

    started: float
    ended: float
    #: The status code, or what the client saw instead (the module docstring).
    outcome: str
    #: The answer's ``X-Model-Version``.
    version: str | None
    #: The client port of the connection it went out on (None: the connect failed), and whether it was new.
    port: int | None = None
    new_connection: bool = False


def encode_post(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """A whole ``POST`` of ``body`` (JSON), as bytes sent as they are on every request."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Failed(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class Answer(NamedTuple):
    """What one request got (the fields of :class:`Record` but its times)."""

    outcome: str
    version: str | None
    port: int | None
    new_connection: bool


class KeptAliveConnection:
    """One client's connection to ``host:port``, kept alive between requests and replaced when it ends."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self._address = (host, port)
        self._timeout_s = timeout_s
        self._socket: socket.socket | None = None
        self._port: int | None = None

    def post(self, request: bytes) -> Answer:
        """Send ``request`` (from :func:`encode_post`) and read the whole answer."""
        if self._socket is not None and select.select([self._socket], [], [], 0)[0]:
            self.close()  # the server closed it while it was idle (or sent what nobody asked for)
        new = self._socket is None
        try:
            if self._socket is None:
                self._connect()
            assert self._socket is not None
            status, version, keep = self._exchange(self._socket, request)
        except _Failed as failure:
            self.close()
            return Answer(failure.kind, None, self._port, new)
        port = self._port
        if not keep:
            self.close()
        return Answer(status, version, port, new)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _connect(self) -> None:
        self._port = None
        try:
            connection = socket.create_connection(self._address, self._timeout_s)
        except TimeoutError as error:
            raise _Failed("timeout") from error
        except ConnectionRefusedError as error:
            raise _Failed("refused") from error
        except OSError as error:
            raise _Failed("other") from error
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket = connection
        self._port = connection.getsockname()[1]

    @staticmethod
    def _exchange(connection: socket.socket, request: bytes) -> tuple[str, str | None, bool]:
        """(status, ``X-Model-Version``, whether the connection stays open) of the answer to ``request``."""
        reader = _AnswerReader(connection)
        try:
            # As urllib3: a server may close (or reset) while the request goes out and still have answered it.
            with suppress(BrokenPipeError, ConnectionResetError):
                connection.sendall(request)
            return reader.read()
        except TimeoutError as error:
            raise _Failed("timeout") from error
        except ConnectionResetError as error:
            raise _Failed("cut" if reader.began else "reset") from error
        except (OSError, ValueError) as error:  # ValueError: a length that is not a number
            raise _Failed("other") from error


class _AnswerReader:
    """Reads one HTTP/1.1 answer off a socket: its head, then its body by length, by chunks or to the end."""

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection
        self._buffer = b""
        self.began = False

    def read(self) -> tuple[str, str | None, bool]:
        end = self._fill_until(b"\r\n\r\n")
        head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
        status_line, *header_lines = head.split(b"\r\n")
        http_version, _, rest = status_line.partition(b" ")
        status = rest[:3]
        if not http_version.startswith(b"HTTP/1.") or not status.isdigit():
            raise _Failed("other")
        headers: dict[bytes, bytes] = {}
        for line in header_lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        connection_header = headers.get(b"connection", b"").lower()
        keep = (
            connection_header == b"keep-alive"
            if http_version == b"HTTP/1.0"
            else connection_header != b"close"
        )
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            self._skip_chunks()
        elif b"content-length" in headers:
            self._skip(int(headers[b"content-length"]))
        else:
            self._skip_to_the_end()
            keep = False
        version = headers.get(b"x-model-version")
        return status.decode(), version.decode("latin-1") if version is not None else None, keep

    def _receive(self) -> None:
        more = self._connection.recv(_RECEIVE)
        if not more:
            raise _Failed("cut" if self.began else "closed")
        self.began = True
        self._buffer += more

    def _fill_until(self, mark: bytes) -> int:
        while (found := self._buffer.find(mark)) < 0:
            self._receive()
        return found

    def _skip(self, length: int) -> None:
        while len(self._buffer) < length:
            self._receive()
        self._buffer = self._buffer[length:]

    def _skip_chunks(self) -> None:
        while True:
            end = self._fill_until(b"\r\n")
            size = int(self._buffer[:end].split(b";")[0], 16)
            self._buffer = self._buffer[end + 2 :]
            if size == 0:
                while (end := self._fill_until(b"\r\n")) > 0:  # trailer lines, up to an empty one
                    self._buffer = self._buffer[end + 2 :]
                self._buffer = self._buffer[2:]
                return
            self._skip(size + 2)

    def _skip_to_the_end(self) -> None:
        while more := self._connection.recv(_RECEIVE):
            self._buffer += more


@dataclass(frozen=True)
class Orders:
    """What a client process is to do: send ``requests`` in turn from ``clients`` closed-loop threads."""

    host: str
    port: int
    #: Each request whole (:func:`encode_post`); client number N starts at ``requests[N % len]``.
    requests: Sequence[bytes]
    clients: int
    deadline: float
    max_requests: int
    timeout_s: float

    def encode(self) -> bytes:
        return marshal.dumps(dataclasses.astuple(self))

    @staticmethod
    def decode(data: bytes) -> Orders:
        return Orders(*marshal.loads(data))


def run_clients(orders: Orders, stop: threading.Event, sink: IO[bytes]) -> None:
    """The closed loop: each client thread sends its next request once the last is answered (or failed)."""
    ended: list[Record] = []
    lock = threading.Lock()
    budget = itertools.count()

    def client(number: int) -> None:
        connection = KeptAliveConnection(orders.host, orders.port, orders.timeout_s)
        offset = number % len(orders.requests)
        cycle = itertools.cycle([*orders.requests[offset:], *orders.requests[:offset]])
        try:
            while not stop.is_set() and time.monotonic() < orders.deadline:
                if next(budget) >= orders.max_requests:
                    return
                started = time.monotonic()
                answer = connection.post(next(cycle))
                record = Record(started, time.monotonic(), *answer)
                with lock:
                    ended.append(record)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=client, args=(number,), daemon=True) for number in range(orders.clients)
    ]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        time.sleep(SEND_EVERY_S)
        with lock:
            batch, ended[:] = list(ended), []
        _send(sink, batch)
    _send(sink, ended)


def _send(sink: IO[bytes], batch: list[Record]) -> None:
    if batch:
        data = marshal.dumps([tuple(record) for record in batch])
        sink.write(_FRAME.pack(len(data)) + data)
        sink.flush()


def read_batch(source: IO[bytes]) -> list[Record] | None:
    """The next batch of records a client process sent, or None once it has ended."""
    size = source.read(_FRAME.size)
    if len(size) < _FRAME.size:
        return None
    data = source.read(_FRAME.unpack(size)[0])
    return [Record(*fields) for fields in marshal.loads(data)]


class ClientProcess:
    """A client process started with ``orders``; :meth:`stop` asks it to finish its requests and end."""

    def __init__(self, orders: Orders) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        data = orders.encode()
        self.process.stdin.write(_FRAME.pack(len(data)) + data)
        self.process.stdin.flush()
        self.records = self.process.stdout

    def stop(self) -> None:
        assert self.process.stdin is not None
        with suppress(BrokenPipeError):
            self.process.stdin.close()

    def wait(self, timeout_s: float) -> None:
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def main() -> None:
    """The client process: orders from standard input, records to standard output, until stdin closes."""
    orders_in = sys.stdin.buffer
    orders = Orders.decode(orders_in.read(_FRAME.unpack(orders_in.read(_FRAME.size))[0]))
    stop = threading.Event()

    def stop_when_told() -> None:
        # Unbuffered: a buffered read still waiting when the clients are done would hold up the exit.
        while os.read(orders_in.fileno(), 4096):
            pass
        stop.set()

    threading.Thread(target=stop_when_told, daemon=True).start()
    run_clients(orders, stop, sys.stdout.buffer)


if __name__ == "__main__":
    main()
