"""The worker: :class:`HeadReadingWorker`, and the limits it holds its clients to (see the package)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from typing import IO, Any

from gunicorn.http.body import LengthReader
from gunicorn.http.message import DEFAULT_MAX_HEADERFIELD_SIZE, MAX_HEADERS, MAX_REQUEST_LINE
from gunicorn.sock import ssl_context
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, ThreadWorker

from flaskserve.errors import BadRequest, FlaskserveError, PayloadTooLarge
from flaskserve.lifecycle.rebalancing import closing_connections
from flaskserve.protocols.payload import encode_json
from flaskserve.serving.gthread.framing import ChunkedBody, Refused, body_framing
from flaskserve.serving.gthread.pool import MethodQueue, Outcome, Pool
from flaskserve.serving.gthread.request import request_parser, settings_of
from flaskserve.serving.gthread.stream import CONTINUE, HeldBytes, Stream
from flaskserve.serving.signals import end_after, graceful_stop_begins, quit_now

__all__ = ["MAX_HEAD_BYTES", "MAX_HELD_BYTES", "ClientLimits", "HeadReadingWorker", "head_reading_worker"]

#: Most bytes of one request head a connection may buffer before it is refused with a 431.
MAX_HEAD_BYTES = 64 * 1024
#: Most bytes a worker holds in memory for its clients: request bodies read, answers not yet taken.
MAX_HELD_BYTES = 64 * 1024 * 1024
#: Bytes read at a time when skipping the unread rest of a body.
_SKIP_STEP = 256 * 1024
#: How long a stopping worker still waits for the requests of the connections it holds (gunicorn's
#: keep-alive linger); they are answered with ``Connection: close``.
STOP_HEAD_LINGER_S = 2.0
#: How long a closing connection waits for its client to close first (gunicorn's own bound).
LINGER_S = 2.0
#: Most bytes read from a closing connection while it lingers (gunicorn's own bound).
LINGER_BYTES = 64 * 1024
#: How often the event loop looks for clients past their time.
SWEEP_S = 0.25
#: Least time between two of the worker's signs of life to the master (a system call each); gunicorn
#: gives one each turn of its event loop, which under load turns for every few requests.
NOTIFY_S = 1.0
_READ_SIZE = 16 * 1024
_BODY_READ_SIZE = 256 * 1024
_HEAD_END = b"\r\n\r\n"
_TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_REASONS = {400: "Bad Request", 413: "Content Too Large"}


@dataclass(frozen=True)
class ClientLimits:
    """How long and how much a worker waits for its clients (the settings of the same names)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    body_min_rate: int = 500
    send_timeout_s: float = 30.0
    max_body_bytes: int = 16 * 1024 * 1024


@dataclass
class _Body:
    """A body arriving after its head: how much is left, where its bytes went, and the client's pace."""

    started: float
    last_read: float
    #: Bytes still to come (``Content-Length``); chunked bodies say when they end.
    left: int
    chunks: ChunkedBody | None
    complete: bool = False
    #: Bytes read so far, framing included.
    received: int = 0
    #: The body's bytes as read, kept in memory while the worker's budget allows; then in ``spool``.
    pieces: list[bytes] = field(default_factory=list)
    in_memory: int = 0
    spool: IO[bytes] | None = None
    #: What came after the body: the start of a next request.
    after: bytes = b""

    def deadline(self, limits: ClientLimits) -> float:
        idle = self.last_read + limits.body_timeout_s
        if limits.body_min_rate <= 0:
            return idle
        paced = self.started + limits.body_timeout_s + self.received / limits.body_min_rate
        return min(idle, paced)


@dataclass
class _Incoming:
    """A request being read: its head so far, its body once the head is in, and its deadline."""

    deadline: float
    data: bytearray = field(default_factory=bytearray)
    handshaking: bool = False
    #: The TLS layer must write before it can read on (the poller then also watches for writability).
    wants_write: bool = False
    #: Where to look for the blank line next; the bytes before it have been searched.
    searched: int = 0
    body: _Body | None = None
    #: ``100 Continue`` was sent for this request.
    continued: bool = False
    #: The socket is in the event loop's poller.
    watched: bool = False
    #: ... still with gunicorn's callback for kept-alive connections, not this request's.
    kept: bool = False

    def head_end(self) -> int:
        """Where the head ends (after its blank line), or -1 while it is incomplete."""
        # RFC 9112 2.2: empty lines before the request line are ignored.
        start = max(self.searched, len(self.data) - len(self.data.lstrip(b"\r\n")))
        found = self.data.find(_HEAD_END, start)
        if found >= 0:
            return found + len(_HEAD_END)
        self.searched = max(0, len(self.data) - len(_HEAD_END) + 1)
        return -1

    def deadline_now(self, limits: ClientLimits) -> float:
        return self.deadline if self.body is None else self.body.deadline(limits)


@dataclass
class _Outgoing:
    """A connection the event loop writes an answer to, or waits on to close."""

    deadline: float
    #: Bytes read from a closing connection while it lingers.
    drained: int = 0


class HeadReadingWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's ``gthread`` worker that reads requests, and writes slow answers, in its event loop."""

    #: How long and how much to wait for clients; :func:`head_reading_worker` sets it from settings.
    limits: ClientLimits = ClientLimits()
    #: gunicorn's settings, read once each (:class:`~.request.Settings` once the worker is made).
    cfg: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.method_queue = MethodQueue()
        #: The settings, each read once (:mod:`.request`): gunicorn's code reads them as the worker's
        #: ``cfg``, a dozen for each request in the thread that serves it.
        self.settings = settings_of(self.cfg, self.log)
        self.cfg = self.settings
        self._next_notify = 0.0
        # Connections whose request is being read, and those the event loop writes to or closes.
        self._incoming: dict[Any, _Incoming] = {}
        self._outgoing: dict[Any, _Outgoing] = {}
        self._held = HeldBytes(MAX_HELD_BYTES)
        self._head_limit = min(MAX_HEAD_BYTES, _parser_head_limit(self.cfg))
        self._chunk_line_limit = self.cfg.limit_request_field_size or DEFAULT_MAX_HEADERFIELD_SIZE
        self._reads_requests = "h2" not in self.cfg.http_protocols
        self._next_sweep = 0.0
        #: When a stopping worker stops waiting for requests already begun.
        self._stop_deadline: float | None = None

    def notify(self) -> None:
        """Tell the master the worker is alive, at most once every ``NOTIFY_S`` (and its timeout's half)."""
        now = time.monotonic()
        if now < self._next_notify:
            return
        timeout = self.cfg.timeout
        self._next_notify = now + (min(NOTIFY_S, timeout / 2) if timeout > 0 else NOTIFY_S)
        super().notify()

    def get_thread_pool(self) -> Any:
        """The threads requests are handed to: a plain queue of connections (:mod:`.pool`)."""
        if not self._reads_requests:
            return super().get_thread_pool()
        return Pool(self.cfg.threads, self._serve, self._served)

    def _serve(self, conn: Any) -> bool:
        """In a thread: gunicorn's ``handle``, then what the answer still held back sent."""
        keep = bool(self.handle(conn))
        try:
            conn.sock.flush()
        except OSError:  # the client is gone
            return False
        return keep

    def _served(self, conn: Any, outcome: Outcome) -> None:
        """In the thread, once it is done with ``conn``: the event loop takes it back."""
        self.method_queue.defer(self.finish_request, conn, outcome)

    # -- reading requests ------------------------------------------------------------------------

    def enqueue_req(self, conn: Any) -> None:
        """Read ``conn``'s next request in the event loop; a thread gets it once the request is in.

        gunicorn calls this for a new connection, and for one whose next request was read ahead.
        """
        if not self._reads_requests:
            super().enqueue_req(conn)
            return
        self._read_request(conn, watched=False)

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        """A kept-alive connection turned readable: its next request is read, its socket kept polled."""
        if not self._reads_requests:
            super().on_client_socket_readable(conn, client)
            return
        self.keepalived_conns.remove(conn)
        self._read_request(conn, watched=True)

    def _read_request(self, conn: Any, *, watched: bool) -> None:
        """Read what has come of the request at once; the poller watches the socket only if more must come.

        A request that is all there (most are, on a connection that turned readable)
        costs the poller nothing more than taking a kept-alive socket out.
        """
        incoming = _Incoming(
            deadline=time.monotonic() + self.limits.header_timeout_s, watched=watched, kept=watched
        )
        if conn.parser is not None:
            incoming.data += conn.parser.unreader.take_buffered()
            stream = _stream_of(conn)
            if stream is not None:
                incoming.data += stream.take()
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
            incoming.handshaking = True
        # The socket is non-blocking from its accept on: threads see it through a stream (:meth:`_hand_over`).
        self._incoming[conn] = incoming
        self._read(conn)

    def _read(self, conn: Any, _readable: Any = None) -> None:
        incoming = self._incoming.get(conn)
        if incoming is None:
            return
        try:
            if incoming.handshaking:
                conn.sock.do_handshake()
                incoming.handshaking = False
            if incoming.body is None and not self._read_head(conn, incoming):
                return
            body = incoming.body
            while body is not None and not body.complete:
                size = _BODY_READ_SIZE if body.chunks is not None else min(body.left, _BODY_READ_SIZE)
                chunk = conn.sock.recv(size)
                if not chunk:
                    self._close(conn)
                    return
                self._take_body(incoming, body, chunk)
        except ssl.SSLWantWriteError:
            self._watch(conn, incoming, wants_write=True)
            return
        except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
            self._watch(conn, incoming, wants_write=False)
            return
        except Refused as refusal:
            self._close(conn, _refusal(refusal))
            return
        except OSError:  # ssl.SSLError included: a failed handshake
            self._close(conn)
            return
        self._hand_over(conn, incoming)

    def _read_head(self, conn: Any, incoming: _Incoming) -> bool:
        """Reads until the head is complete; whether it is (else the connection is closed or waits)."""
        while (end := incoming.head_end()) < 0 and len(incoming.data) <= self._head_limit:
            chunk = conn.sock.recv(_READ_SIZE)
            if not chunk:
                self._close(conn)
                return False
            incoming.data += chunk
        if end < 0:
            self._close(conn, _TOO_LARGE)
            return False
        framing = body_framing(bytes(incoming.data[: end - len(_HEAD_END)]), self.limits.max_body_bytes)
        if not framing.has_body:
            return True
        now = time.monotonic()
        chunks = ChunkedBody(self.limits.max_body_bytes, self._chunk_line_limit) if framing.chunked else None
        body = _Body(started=now, last_read=now, left=framing.length, chunks=chunks)
        incoming.body = body
        read_ahead = bytes(incoming.data[end:])
        del incoming.data[end:]
        if read_ahead:
            self._take_body(incoming, body, read_ahead)
        elif framing.expects_continue:
            # Best effort, as the client sends its body anyway after a while (RFC 9110 10.1.1).
            with contextlib.suppress(OSError):
                incoming.continued = conn.sock.send(CONTINUE) == len(CONTINUE)
        return True

    def _take_body(self, incoming: _Incoming, body: _Body, chunk: bytes) -> None:
        """Keeps ``chunk``'s body bytes (in memory, or spooled past the budget) and what follows the body."""
        body.last_read = time.monotonic()
        if body.chunks is not None:
            ends_at = body.chunks.feed(chunk)
            if ends_at is not None:
                body.complete = True
                chunk, body.after = chunk[:ends_at], chunk[ends_at:]
        else:
            if len(chunk) >= body.left:
                body.complete = True
                chunk, body.after = chunk[: body.left], chunk[body.left :]
            body.left -= len(chunk)
        body.received += len(chunk)
        # Chunk framing may at most double a body: anything beyond is not an honest client.
        if body.received > 2 * self.limits.max_body_bytes + MAX_HEAD_BYTES:
            raise Refused(413, "the chunked body is larger than the server accepts")
        if body.spool is None and self._held.take(len(chunk)):
            body.pieces.append(chunk)
            body.in_memory += len(chunk)
            return
        if body.spool is None:
            # Closed by the stream once read, or here if the connection closes first.
            body.spool = tempfile.TemporaryFile()  # noqa: SIM115
        body.spool.write(chunk)

    def _hand_over(self, conn: Any, incoming: _Incoming) -> None:
        """The request is in: a thread gets the connection, and gunicorn's parser the bytes read."""
        del self._incoming[conn]
        if incoming.watched:
            self.poller.unregister(conn.sock)
        pieces: list[bytes | IO[bytes]] = [bytes(incoming.data)]
        counted = 0
        body = incoming.body
        if body is not None:
            # Counted until the request is served: requests waiting for a thread hold their bodies too.
            counted = body.in_memory
            pieces.extend(body.pieces)
            if body.spool is not None:
                body.spool.seek(0)
                pieces.append(body.spool)
            pieces.append(body.after)
        stream = _stream_of(conn)
        if stream is None:
            stream = Stream(conn.sock, self._held, self.limits.send_timeout_s)
            conn.parser = request_parser(self.settings, stream, conn.client)
        stream.hold(pieces, counted=counted)
        stream.continued = incoming.continued
        # The bytes are in the parser's reach: the thread must not wait for more before parsing.
        conn.data_ready = True
        # The thread reads and writes through the stream, whatever gunicorn's code it runs; the event
        # loop takes the socket back in :meth:`finish_request`.
        conn.sock = stream
        self.tpool.hand(conn)

    def _watch(self, conn: Any, incoming: _Incoming, *, wants_write: bool) -> None:
        """Wait for the socket to turn readable, and writable too while TLS has bytes to send."""
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if wants_write else 0)
        if not incoming.watched:
            self.poller.register(conn.sock, events, partial(self._read, conn))
            incoming.watched = True
        elif incoming.wants_write != wants_write or incoming.kept:
            self.poller.modify(conn.sock, events, partial(self._read, conn))
        incoming.wants_write = wants_write
        incoming.kept = False

    # -- serving and answering -------------------------------------------------------------------

    def handle_request(self, req: Any, conn: Any) -> bool:
        """gunicorn's request handling, writing the answer through the connection's stream."""
        if not isinstance(conn.sock, Stream):
            return bool(super().handle_request(req, conn))
        if closing_connections():
            # Another worker just joined: this answer closes its connection (lifecycle.rebalancing).
            req.must_close = True
        try:
            keep = bool(super().handle_request(req, conn))
            if keep and _unread(req.body):
                # A request refused before its body was read leaves the body's rest ahead of the next
                # request, where it would be taken for that request's head and the connection closed
                # after an answer that promised to keep it. The event loop read the whole body before
                # this thread got it, so reading past the rest here never waits on the client.
                while req.body.read(_SKIP_STEP):
                    pass
            return keep
        except TimeoutError:
            self.log.debug("Closing a connection whose client took no byte of its answer in time.")
            return False

    def _keepalive_after(self, conn: Any, keepalive: bool) -> bool:
        """Whether to keep the connection: :meth:`handle_request` already read past the body's rest.

        gunicorn reads past it here, with a deadline set on the socket; the whole
        body was in memory, and has been read, so only a body that failed to read
        (its end, and the next request's start, unknown) closes the connection.
        """
        if not isinstance(conn.sock, Stream):
            return bool(super()._keepalive_after(conn, keepalive))
        return keepalive and not conn.parser.mesg.body.failed

    def finish_request(self, conn: Any, fs: Any) -> None:
        """After the thread: the socket back, the rest of the answer written in the event loop, keep-alive."""
        stream = conn.sock
        if not isinstance(stream, Stream):
            super().finish_request(conn, fs)
            return
        conn.sock = stream.socket
        stream.served()
        try:
            keep = not fs.cancelled() and bool(fs.result())
        except Exception:
            keep = False
        if stream.unsent:
            conn.sock.setblocking(False)
            self._outgoing[conn] = _Outgoing(deadline=time.monotonic() + self.limits.send_timeout_s)
            self.poller.register(
                conn.sock, selectors.EVENT_WRITE, partial(self._write, conn, stream, fs, keep)
            )
            self._write(conn, stream, fs, keep)
            return
        self._answered(conn, stream, fs, keep)

    def _write(self, conn: Any, stream: Stream, fs: Any, keep: bool, _writable: Any = None) -> None:
        out = self._outgoing.get(conn)
        if out is None:
            return
        try:
            done = stream.send_unsent()
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
            return
        except ssl.SSLWantReadError:
            self.poller.modify(
                conn.sock,
                selectors.EVENT_READ | selectors.EVENT_WRITE,
                partial(self._write, conn, stream, fs, keep),
            )
            return
        except OSError:
            self._close(conn)
            return
        out.deadline = time.monotonic() + self.limits.send_timeout_s
        if done:
            del self._outgoing[conn]
            self.poller.unregister(conn.sock)
            self._answered(conn, stream, fs, keep)

    def _answered(self, conn: Any, stream: Stream, fs: Any, keep: bool) -> None:
        if not keep:
            self._linger(conn)
            return
        # What the parser and the stream read past this request is the next one's start, in that order.
        ahead = conn.parser.unreader.take_buffered() + stream.take()
        if ahead:
            conn.parser.unreader.unread(ahead)
            self._read_request(conn, watched=False)
            return
        # gunicorn's keep-alive, less its switch to non-blocking mode: the socket never left it.
        conn.set_timeout()
        if not self.alive:
            conn.timeout = min(conn.timeout, time.monotonic() + STOP_KEEPALIVE_LINGER)
        self.keepalived_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))

    def _linger(self, conn: Any) -> None:
        """Close after an answer, letting the client close first so that it gets all of it (RFC 9112 9.6).

        gunicorn does this with a blocking read in the event loop: up to 2 s of a
        stopped worker for each client that neither reads nor closes.
        """
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
        except OSError:
            self._close(conn)
            return
        self._outgoing[conn] = _Outgoing(deadline=time.monotonic() + LINGER_S)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._drain, conn))

    def _drain(self, conn: Any, _readable: Any = None) -> None:
        out = self._outgoing.get(conn)
        if out is None:
            return
        try:
            while out.drained < LINGER_BYTES:
                chunk = conn.sock.recv(_READ_SIZE)
                if not chunk:
                    break
                out.drained += len(chunk)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError:
            pass
        self._close(conn)

    # -- deadlines and closing -------------------------------------------------------------------

    def murder_pending(self) -> None:
        """gunicorn's clean-up of waiting connections, and of clients past their time."""
        super().murder_pending()
        now = time.monotonic()
        if now < self._next_sweep and self.alive:
            return
        self._next_sweep = now + SWEEP_S
        stop_deadline = float("inf")
        if not self.alive:
            if self._stop_deadline is None:
                self._stop_deadline = now + STOP_HEAD_LINGER_S
            stop_deadline = self._stop_deadline
        for conn, incoming in list(self._incoming.items()):
            begun = bool(incoming.data)
            # A connection accepted just before the stop gets its request in too: its client sent it
            # or is about to, and closing the connection unanswered would fail that request.
            if min(incoming.deadline_now(self.limits), stop_deadline) <= now:
                self._close(conn, _TIMED_OUT if begun else b"")
        for conn, out in list(self._outgoing.items()):
            if out.deadline <= now:
                self._close(conn)

    def _close(self, conn: Any, answer: bytes = b"") -> None:
        """Close ``conn``, after ``answer`` if given (then lingering, so that the client gets it)."""
        incoming = self._incoming.pop(conn, None)
        out = self._outgoing.pop(conn, None)
        if (incoming is not None and incoming.watched) or out is not None:
            self.poller.unregister(conn.sock)
        if incoming is not None and incoming.body is not None:
            self._held.give(incoming.body.in_memory)
            if incoming.body.spool is not None:
                incoming.body.spool.close()
        stream = _stream_of(conn)
        if stream is not None:
            stream.discard()
        if answer:
            # Best effort: a client that is gone or not reading just sees the connection close.
            with contextlib.suppress(OSError):
                conn.sock.send(answer)
            self._linger(conn)
            return
        self.nr_conns -= 1
        conn.close()

    # -- signals ---------------------------------------------------------------------------------

    def handle_exit(self, sig: int, frame: Any) -> None:
        """TERM: gunicorn's graceful stop, and the worker ended if still there after the graceful timeout.

        gunicorn's own stop waits for its threads when the interpreter exits, so a
        request stuck in a model call would otherwise hold a worker that got TERM on
        its own (not from the arbiter, which kills it after the graceful timeout).
        The worker's other servers (gRPC) stop taking calls now too.
        """
        super().handle_exit(sig, frame)
        graceful_stop_begins()
        end_after(self.cfg.graceful_timeout + 1)

    def is_parent_alive(self) -> bool:
        """gunicorn's check that the master is still there; a worker left alone stops within the timeout."""
        alive = bool(super().is_parent_alive())
        if not alive:
            graceful_stop_begins()
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


def head_reading_worker(limits: ClientLimits) -> type[HeadReadingWorker]:
    """The worker class for gunicorn's ``worker_class`` setting, waiting on clients as ``limits`` say."""

    class ConfiguredWorker(HeadReadingWorker):
        pass

    ConfiguredWorker.limits = limits
    # The name gunicorn logs at startup.
    ConfiguredWorker.__name__ = ConfiguredWorker.__qualname__ = HeadReadingWorker.__name__
    return ConfiguredWorker


def _stream_of(conn: Any) -> Stream | None:
    """The stream the connection's parser reads, once the worker has made one."""
    try:
        source = conn.parser.unreader.sock
    except AttributeError:  # no parser yet, or gunicorn's HTTP/2 one
        return None
    return source if isinstance(source, Stream) else None


def _unread(body: Any) -> bool:
    """Whether gunicorn's ``body`` may hold bytes the app left unread (none, a length read to its end)."""
    reader = body.reader
    return not (isinstance(reader, LengthReader) and reader.length == 0 and body.buf.tell() == 0)


def _refusal(refusal: Refused) -> bytes:
    """The answer to a request refused before any thread saw it, as the app would write it."""
    error: FlaskserveError = (
        PayloadTooLarge(refusal.message) if refusal.status == 413 else BadRequest(refusal.message)
    )
    body = encode_json({"error": error.message, "code": error.code})
    head = (
        f"HTTP/1.1 {error.status} {_REASONS[error.status]}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


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
