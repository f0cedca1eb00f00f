"""A connection's socket as the thread serving it sees it, so that the thread never waits on its client.

gunicorn's parser reads a request from the :class:`Stream`, which gives it first
the bytes the event loop already read (:mod:`.worker`), then the socket's. The
answer is written to the stream, which sends what the socket takes at once and
keeps the rest for the event loop to send (:meth:`Stream.send_unsent`), within a
budget the worker's threads share (:class:`HeldBytes`).

The socket stays non-blocking throughout: the thread never reads it (the whole
request is in memory) and writes it without waiting, so gunicorn's switches to
blocking mode and back (a system call each, twice a request) are kept from it.
An answer's head is held until its body's first bytes, so that a small answer
leaves in one system call and one segment rather than two.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections import deque
from collections.abc import Iterable
from typing import IO, Any

__all__ = ["CONTINUE", "HeldBytes", "Stream"]

#: The interim answer to ``Expect: 100-continue`` (RFC 9110 section 10.1.1).
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: Largest write an answer's held head is joined to (a copy); a larger one is sent after the head.
_JOIN_LIMIT = 64 * 1024


class HeldBytes:
    """Bytes a worker holds for its clients, counted against a budget its threads share."""

    def __init__(self, limit: int) -> None:
        self._left = limit
        self._lock = threading.Lock()

    def take(self, count: int) -> bool:
        if not count:
            return True
        with self._lock:
            if count > self._left:
                return False
            self._left -= count
            return True

    def give(self, count: int) -> None:
        if not count:
            return
        with self._lock:
            self._left += count


class Stream:
    """A connection's socket as its thread sees it: gunicorn's parser reads it, the answer goes to it.

    Reads come first from what the event loop read (in memory, then spooled),
    then from the socket. A write goes to the socket as far as the socket takes it
    at once; the rest is kept, within the worker's budget, for the event loop to
    send. Past the budget the thread writes it, waiting at most ``send_timeout_s``
    for each byte taken. Everything else is the socket's.
    """

    def __init__(self, sock: Any, held: HeldBytes, send_timeout_s: float) -> None:
        self._sock = sock
        self._held = held
        self._send_timeout_s = send_timeout_s
        self._pieces: deque[bytes | IO[bytes]] = deque()
        self._offset = 0
        self._unsent: deque[memoryview] = deque()
        #: Bytes of ``_unsent`` counted against the worker's budget (all but the last piece may be).
        self._unsent_held = 0
        #: Bytes of the request being served that the event loop read into memory, counted against the budget.
        self._body_held = 0
        #: ``100 Continue`` was sent for the request being served: gunicorn's own is not sent again.
        self.continued = False
        #: The timeout gunicorn's parser sets for its reads; see :meth:`settimeout`.
        self._read_timeout: float | None = None
        #: The answer's first write (its head) is held, to go out with the next one: see :meth:`sendall`.
        self._holds_first = False
        self._first = b""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    @property
    def socket(self) -> Any:
        """The connection's socket itself, for the event loop."""
        return self._sock

    def gettimeout(self) -> float | None:
        return self._read_timeout

    def setblocking(self, flag: bool) -> None:
        """Blocking mode as the thread sees it: reads that reach the socket wait (see :meth:`recv`).

        gunicorn makes the socket blocking for the thread and non-blocking again
        for the event loop, a system call each way. The socket is left
        non-blocking, and blocking mode is what :meth:`recv` gives.
        """
        self._read_timeout = None if flag else 0.0

    def settimeout(self, value: float | None) -> None:
        """Bound the reads that reach the socket (the socket itself is left as it is).

        gunicorn's parser sets and restores a timeout around the reads that skip
        a body's unread rest, twice a request. Those reads come from what the
        event loop already read, so setting the socket's timeout each time (a
        system call for each) would only cost; it is applied to a read that
        reaches the socket, should one ever do.
        """
        self._read_timeout = value

    def hold(self, pieces: Iterable[bytes | IO[bytes]], *, counted: int = 0) -> None:
        """Give the parser ``pieces`` before the socket; ``counted`` bytes of them are in the budget.

        A request is about to be served: its answer's first write is held (:meth:`sendall`).
        """
        self._pieces.extend(piece for piece in pieces if not isinstance(piece, bytes) or piece)
        self._body_held += counted
        self._holds_first = True

    def served(self) -> None:
        """The request was served: its body no longer counts against the budget."""
        self._held.give(self._body_held)
        self._body_held = 0

    def take(self) -> bytes:
        """Everything read ahead and not yet parsed (the start of a next request), and nothing more."""
        parts = []
        while self._pieces:
            piece = self._pieces.popleft()
            if isinstance(piece, bytes):
                parts.append(piece[self._offset :])
                self._offset = 0
            else:
                parts.append(piece.read())
                piece.close()
        return b"".join(parts)

    def discard(self) -> None:
        """Forget what is held, as the connection closes."""
        self.take()
        self.served()
        self._held.give(self._unsent_held)
        self._unsent_held = 0
        self._unsent.clear()
        self._holds_first = False
        self._first = b""

    def recv(self, size: int, flags: int = 0) -> bytes:
        while self._pieces:
            piece = self._pieces[0]
            if isinstance(piece, bytes):
                chunk = piece[self._offset : self._offset + size]
                self._offset += len(chunk)
                if self._offset >= len(piece):
                    self._pieces.popleft()
                    self._offset = 0
            else:
                chunk = piece.read(size)
                if not chunk:
                    piece.close()
                    self._pieces.popleft()
            if chunk:
                return chunk
        # Not reached for a request the event loop read whole; waits as gunicorn's reads would.
        timeout = self._sock.gettimeout()
        self._sock.settimeout(self._read_timeout)
        try:
            data: bytes = self._sock.recv(size, flags)
        finally:
            self._sock.settimeout(timeout)
        return data

    @property
    def unsent(self) -> bool:
        return bool(self._unsent)

    def send(self, data: bytes, flags: int = 0) -> int:
        if self.continued and data == CONTINUE:
            self.continued = False
            return len(data)
        self.sendall(data)
        return len(data)

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data``; an answer's first write is held, to go out with the next or at :meth:`flush`.

        gunicorn writes an answer's head, then each piece of its body: joined, a
        small answer takes one ``send`` instead of two (and the client one segment).
        A large first body piece is not copied for that; the head goes before it.
        """
        if self._holds_first:
            self._holds_first = False
            self._first = bytes(data)
            return
        if self._first:
            first, self._first = self._first, b""
            if len(data) <= _JOIN_LIMIT:
                data = first + data
            else:
                self._send(memoryview(first))
        self._send(memoryview(data).cast("B"))

    def flush(self) -> None:
        """The thread is done with the answer: a write still held is sent (or kept for the event loop)."""
        self._holds_first = False
        if self._first:
            first, self._first = self._first, b""
            self._send(memoryview(first))

    def _send(self, view: memoryview) -> None:
        if not self._unsent:
            view = view[self._send_now(view) :]
            if not view:
                return
        if self._held.take(len(view)):
            # Kept beyond this call: a copy, as the caller may reuse its buffer.
            self._unsent.append(memoryview(bytes(view)))
            self._unsent_held += len(view)
            return
        # Past the budget: this thread waits for the client, a byte taken every ``send_timeout_s`` at least.
        self._unsent.append(view)
        self._send_waiting()

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        self.flush()
        self._send_waiting()
        timeout = self._sock.gettimeout()
        self._sock.settimeout(self._send_timeout_s)
        try:
            sent: int = self._sock.sendfile(file, offset, count)
        finally:
            self._sock.settimeout(timeout)
        return sent

    def send_unsent(self) -> bool:
        """Send what the socket takes without waiting (the event loop's part); whether all is sent.

        Raises ``BlockingIOError`` or an ``SSLWant…Error`` when the socket takes no more.
        """
        while self._unsent:
            piece = self._unsent[0]
            sent = self._sock.send(piece)
            self._sent(sent)
            if sent < len(piece):
                return False
        return True

    def _send_now(self, view: memoryview) -> int:
        """Send what the socket takes without waiting; how much it took."""
        sent = 0
        if isinstance(self._sock, ssl.SSLSocket):
            # TLS takes no flags: the socket, non-blocking unless a slow answer's wait left it
            # otherwise, is made non-blocking for the while.
            timeout = self._sock.gettimeout()
            if timeout != 0.0:
                self._sock.settimeout(0.0)
            try:
                while sent < len(view):
                    sent += self._sock.send(view[sent:])
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
            finally:
                if timeout != 0.0:
                    self._sock.settimeout(timeout)
            return sent
        try:
            while sent < len(view):
                sent += self._sock.send(view[sent:], socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass
        return sent

    def _send_waiting(self) -> None:
        """Send everything kept, waiting at most ``send_timeout_s`` for each byte taken."""
        timeout = self._sock.gettimeout()
        self._sock.settimeout(self._send_timeout_s)
        try:
            while self._unsent:
                self._sent(self._sock.send(self._unsent[0]))
        finally:
            self._sock.settimeout(timeout)

    def _sent(self, count: int) -> None:
        """``count`` bytes of the first piece kept went out: drop them, and give back what they held."""
        piece = self._unsent[0]
        given = min(count, self._unsent_held)
        self._held.give(given)
        self._unsent_held -= given
        if count < len(piece):
            self._unsent[0] = piece[count:]
        else:
            self._unsent.popleft()
