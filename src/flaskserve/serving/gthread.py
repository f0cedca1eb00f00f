"""gunicorn's threaded worker, except that a connection gets a thread only once its request head is in.

gunicorn's ``gthread`` worker accepts in its event loop and hands each new
connection to a pool thread straight away. The thread waits up to 5 s for a
first byte and then reads the request line and headers with blocking reads and
no deadline, so a client that sends its headers a line a second holds a thread
for as long as it keeps sending: ``threads`` such clients per worker (4 by
default) and every other request waits behind them in the pool's queue. No
gunicorn setting bounds that time: ``timeout`` watches the worker's event loop,
which stays responsive; ``keepalive`` covers idle kept-alive connections;
``limit_request_*`` bound sizes; more threads only raise the number of slow
clients it takes.

:class:`HeadReadingWorker` reads every request head (a new connection's first,
and each next one on a kept-alive connection) in the event loop without
blocking, the TLS handshake included, and hands the connection to a thread with
the bytes read so far once the head is complete. Its guarantees:

- no thread waits on a client before the client has sent a whole request head;
- a head must be complete within ``header_timeout_s`` of the connection being
  accepted (or of the next request's first byte on a kept-alive connection),
  else the connection is closed, with a 408 if the client had begun a request;
- a head larger than ``MAX_HEAD_BYTES`` is refused with a 431, so a connection
  buffers little however many there are;
- a stopping worker closes the connections that have not begun a request and
  gives the heads already begun ``STOP_HEAD_LINGER_S`` more at most;
- INT and QUIT end the worker at once, and a worker still there the graceful
  timeout after a TERM (or after its master went) is ended (see
  :mod:`flaskserve.serving.signals`).

Parsing, the app call, keep-alive and the graceful stop stay gunicorn's. With
HTTP/2 enabled (``http_protocols`` naming ``h2``), connections take gunicorn's
own path, unchanged.
"""

from __future__ import annotations

import contextlib
import selectors
import ssl
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from gunicorn import http
from gunicorn.http.message import DEFAULT_MAX_HEADERFIELD_SIZE, MAX_HEADERS, MAX_REQUEST_LINE
from gunicorn.sock import ssl_context
from gunicorn.workers.gthread import ThreadWorker

from flaskserve.serving.signals import end_after, quit_now

__all__ = ["MAX_HEAD_BYTES", "HeadReadingWorker", "head_reading_worker"]

#: Most bytes of one request head a connection may buffer before it is refused with a 431.
MAX_HEAD_BYTES = 64 * 1024
#: How long a stopping worker still waits for request heads already begun (gunicorn's keep-alive linger).
STOP_HEAD_LINGER_S = 2.0
_READ_SIZE = 16 * 1024
_HEAD_END = b"\r\n\r\n"
_TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


@dataclass
class _Head:
    """A request head being read: the bytes so far, and when the client's time is up."""

    deadline: float
    data: bytearray = field(default_factory=bytearray)
    handshaking: bool = False
    #: The TLS layer must write before it can read on (the poller then also watches for writability).
    wants_write: bool = False
    #: Where to look for the blank line next; the bytes before it have been searched.
    searched: int = 0

    def complete(self) -> bool:
        # RFC 9112 2.2: empty lines before the request line are ignored.
        start = max(self.searched, len(self.data) - len(self.data.lstrip(b"\r\n")))
        if self.data.find(_HEAD_END, start) >= 0:
            return True
        self.searched = max(0, len(self.data) - len(_HEAD_END) + 1)
        return False


class HeadReadingWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's ``gthread`` worker that reads request heads in its event loop (see the module)."""

    #: Seconds a client has to send a request head; :func:`head_reading_worker` sets it from settings.
    header_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Insertion order is deadline order: every head gets the same time from when it starts.
        self._heads: dict[Any, _Head] = {}
        self._head_limit = min(MAX_HEAD_BYTES, _parser_head_limit(self.cfg))
        self._reads_heads = "h2" not in self.cfg.http_protocols
        #: When a stopping worker stops waiting for heads already begun.
        self._stop_deadline: float | None = None

    def enqueue_req(self, conn: Any) -> None:
        """Read ``conn``'s next request head in the event loop; a thread gets it once the head is in.

        gunicorn calls this for a new connection, for a kept-alive one that turned
        readable, and for one whose next request was read ahead.
        """
        if not self._reads_heads:
            super().enqueue_req(conn)
            return
        head = _Head(deadline=time.monotonic() + self.header_timeout_s)
        if conn.parser is not None:
            head.data += conn.parser.unreader.take_buffered()
        elif self.cfg.is_ssl:
            try:
                conn.sock = ssl_context(self.cfg).wrap_socket(
                    conn.sock,
                    server_side=True,
                    do_handshake_on_connect=False,
                    suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
                )
            except OSError:
                self._close(conn)
                return
            head.handshaking = True
        # A connection whose next request was read ahead comes straight from a thread, still blocking.
        conn.sock.setblocking(False)
        self._heads[conn] = head
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._read_head, conn))
        self._read_head(conn)

    def _read_head(self, conn: Any, _readable: Any = None) -> None:
        head = self._heads.get(conn)
        if head is None:
            return
        try:
            if head.handshaking:
                conn.sock.do_handshake()
                head.handshaking = False
            while not head.complete() and len(head.data) <= self._head_limit:
                chunk = conn.sock.recv(_READ_SIZE)
                if not chunk:
                    self._close(conn)
                    return
                head.data += chunk
        except ssl.SSLWantWriteError:
            self._watch(conn, head, wants_write=True)
            return
        except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
            self._watch(conn, head, wants_write=False)
            return
        except OSError:  # ssl.SSLError included: a failed handshake
            self._close(conn)
            return
        if not head.complete():
            self._close(conn, _TOO_LARGE)
            return
        del self._heads[conn]
        self.poller.unregister(conn.sock)
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(bytes(head.data))
        # The bytes are in the parser: the thread must not wait for more before parsing.
        conn.data_ready = True
        super().enqueue_req(conn)

    def _watch(self, conn: Any, head: _Head, *, wants_write: bool) -> None:
        """Wait for the socket to turn readable, and writable too while TLS has bytes to send."""
        if head.wants_write != wants_write:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if wants_write else 0)
            self.poller.modify(conn.sock, events, partial(self._read_head, conn))
            head.wants_write = wants_write

    def murder_pending(self) -> None:
        """gunicorn's clean-up of waiting connections, and of heads past their deadline."""
        super().murder_pending()
        now = time.monotonic()
        if not self.alive:
            if self._stop_deadline is None:
                self._stop_deadline = now + STOP_HEAD_LINGER_S
            for conn, head in list(self._heads.items()):
                if not head.data or min(head.deadline, self._stop_deadline) <= now:
                    self._close(conn, _TIMED_OUT if head.data else b"")
            return
        while self._heads:
            conn, head = next(iter(self._heads.items()))
            if head.deadline > now:
                break
            self._close(conn, _TIMED_OUT if head.data else b"")

    def _close(self, conn: Any, answer: bytes = b"") -> None:
        if self._heads.pop(conn, None) is not None:
            self.poller.unregister(conn.sock)
        if answer:
            # Best effort: a client that is gone or not reading just sees the connection close.
            with contextlib.suppress(OSError):
                conn.sock.send(answer)
        self.nr_conns -= 1
        conn.close()

    def handle_exit(self, sig: int, frame: Any) -> None:
        """TERM: gunicorn's graceful stop, and the worker ended if still there after the graceful timeout.

        gunicorn's own stop waits for its threads when the interpreter exits, so a
        request stuck in a model call would otherwise hold a worker that got TERM on
        its own (not from the arbiter, which kills it after the graceful timeout).
        """
        super().handle_exit(sig, frame)
        end_after(self.cfg.graceful_timeout + 1)

    def is_parent_alive(self) -> bool:
        """gunicorn's check that the master is still there; a worker left alone stops within the timeout."""
        alive = bool(super().is_parent_alive())
        if not alive:
            end_after(self.cfg.graceful_timeout + 1)
        return alive

    def handle_quit(self, sig: int, frame: Any) -> None:
        """INT and QUIT: exit now, abandoning the requests in progress.

        gunicorn's own quick exit ends the main thread with ``sys.exit``, after which
        the interpreter waits for the pool's threads to finish their requests: a
        long prediction would delay a quick stop until the master killed the worker.
        """
        self.alive = False
        self.cfg.worker_int(self)
        quit_now(sig)


def head_reading_worker(header_timeout_s: float) -> type[HeadReadingWorker]:
    """The worker class for gunicorn's ``worker_class`` setting, with the given header timeout."""

    class ConfiguredWorker(HeadReadingWorker):
        pass

    ConfiguredWorker.header_timeout_s = header_timeout_s
    # The name gunicorn logs at startup.
    ConfiguredWorker.__name__ = ConfiguredWorker.__qualname__ = HeadReadingWorker.__name__
    return ConfiguredWorker


def _parser_head_limit(cfg: Any) -> int:
    """The largest request head gunicorn's parser accepts under ``cfg``'s ``limit_request_*``."""
    fields = cfg.limit_request_fields if 0 < cfg.limit_request_fields <= MAX_HEADERS else MAX_HEADERS
    field_size = (
        cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else DEFAULT_MAX_HEADERFIELD_SIZE
    )
    line = cfg.limit_request_line
    if line == 0:
        line = 1024 * 1024
    elif line < 0 or line > MAX_REQUEST_LINE:
        line = MAX_REQUEST_LINE
    return int(fields * (field_size + 2) + 4 + line + 2)
