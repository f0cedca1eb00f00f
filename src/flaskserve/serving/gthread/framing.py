"""Where an HTTP/1.1 request's body ends, judged from its bytes as they arrive (RFC 9112 sections 6 and 7).

The gunicorn worker (:mod:`flaskserve.serving.gthread`) reads a whole request
in its event loop before a thread parses it, so it must know from the head how
long the body is, and find the end of a chunked body as its bytes come in. It
judges no more than it must, and never less strictly than gunicorn's parser,
which reads the request again in the thread:

- a head whose framing gunicorn refuses (``Content-Length`` beside
  ``Transfer-Encoding``, two ``Content-Length`` fields, a coding after
  ``chunked``, a length that is not digits) is said to have no body: it is
  handed over unread, and gunicorn answers 400 before reading any body, so no
  byte is ever read as body that gunicorn would read as a next request;
- a chunked body is checked as gunicorn's reader checks it (sizes, extensions,
  the CRLF after each chunk), so that the reader, which runs inside the app,
  cannot fail on it and turn a malformed body into a 500: a malformed one is
  refused here with a 400. Trailer fields are refused too (no client of an
  inference API sends them, and every rule gunicorn applies to them would have
  to be repeated here);
- a body declared or found larger than the limit is refused with a 413.

Pure: bytes in, decisions out; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from gunicorn.http.body import CHUNK_EXT_RE

__all__ = ["MAX_METHOD_BYTES", "BodyFraming", "ChunkedBody", "Refused", "body_framing"]

#: The longest method gunicorn accepts (it answers 414 for a longer one that makes the line too long).
MAX_METHOD_BYTES = 20
_HEX_DIGITS = b"0123456789abcdefABCDEF"
_CRLF = b"\r\n"


class Refused(Exception):
    """The request is refused before any thread sees it: ``status`` and what the client is told."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"{status}: {message}")


@dataclass(frozen=True)
class BodyFraming:
    """What a request head says of its body."""

    #: Bytes announced by ``Content-Length``; 0 for none, or for a head gunicorn will refuse.
    length: int = 0
    chunked: bool = False
    #: The client waits for ``100 Continue`` before it sends the body (RFC 9110 section 10.1.1).
    expects_continue: bool = False

    @property
    def has_body(self) -> bool:
        return self.chunked or self.length > 0


def body_framing(head: bytes, max_body_bytes: int) -> BodyFraming:
    """The body ``head`` announces (``head`` without the blank line that ends it).

    Raises :class:`Refused` for a body declared larger than ``max_body_bytes`` and
    for a method longer than gunicorn accepts.
    """
    lines = head.lstrip(_CRLF).split(_CRLF)
    request_line = lines[0]
    method = request_line.split(b" ", 1)[0]
    if len(method) > MAX_METHOD_BYTES:
        raise Refused(400, f"the method is longer than {MAX_METHOD_BYTES} characters")
    http11 = request_line.endswith(b" HTTP/1.1")
    lengths: list[bytes] = []
    codings: list[bytes] = []
    expects_continue = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        # As gunicorn reads a field: the name as it is (a blank around it is refused), the value trimmed.
        name = name.upper()
        value = value.strip(b" \t")
        if name == b"CONTENT-LENGTH":
            lengths.append(value)
        elif name == b"TRANSFER-ENCODING":
            codings.extend(coding.strip(b" \t").lower() for coding in value.split(b","))
        elif name == b"EXPECT" and value.lower() == b"100-continue":
            expects_continue = http11
    if codings:
        chunked = not lengths and http11 and codings[-1] == b"chunked" and codings.count(b"chunked") == 1
        return BodyFraming(chunked=chunked, expects_continue=expects_continue and chunked)
    if len(lengths) != 1 or not lengths[0].isdigit():
        return BodyFraming()
    length = int(lengths[0])
    if length > max_body_bytes:
        raise Refused(413, f"the request body is larger than the server accepts ({max_body_bytes} bytes)")
    return BodyFraming(length=length, expects_continue=expects_continue and length > 0)


class ChunkedBody:
    """Finds the end of a chunked body in the bytes fed to it, checking it on the way (RFC 9112 7.1).

    :meth:`feed` takes each piece read from the socket in turn, and holds no more
    than one chunk-size line of them (``max_line_bytes``).
    """

    _SIZE, _DATA, _DATA_END, _LAST_END = range(4)

    def __init__(self, max_body_bytes: int, max_line_bytes: int) -> None:
        self.max_body_bytes = max_body_bytes
        self.max_line_bytes = max_line_bytes
        #: Bytes of chunk data so far, framing left out.
        self.size = 0
        self._state = self._SIZE
        self._pending = bytearray()
        self._left = 0

    def feed(self, data: bytes) -> int | None:
        """How many bytes of ``data`` end the body, if it ends in them; else ``None`` (all of it is body).

        Raises :class:`Refused` for framing gunicorn would refuse, and for a body
        larger than ``max_body_bytes``.
        """
        position = 0
        while position < len(data):
            if self._state == self._DATA:
                taken = min(self._left, len(data) - position)
                position += taken
                self._left -= taken
                if self._left == 0:
                    self._state = self._DATA_END
            elif self._state == self._SIZE:
                position = self._size_line(data, position)
            else:
                # The CRLF after a chunk's data, or the one that ends the body after the last chunk.
                wanted = 2 - len(self._pending)
                self._pending += data[position : position + wanted]
                position += min(wanted, len(data) - position)
                if len(self._pending) < 2:
                    continue
                if self._pending != _CRLF:
                    if self._state == self._LAST_END:
                        raise Refused(400, "trailer fields after a chunked body are not accepted")
                    raise Refused(400, "a chunk of the chunked body does not end with CRLF")
                self._pending.clear()
                if self._state == self._LAST_END:
                    return position
                self._state = self._SIZE
        return None

    def _size_line(self, data: bytes, position: int) -> int:
        """Reads a chunk-size line from ``position``; returns where the reading goes on."""
        if self._pending.endswith(b"\r") and data[position : position + 1] == b"\n":
            line = bytes(self._pending[:-1])
            position += 1
        else:
            end = data.find(_CRLF, position)
            if end < 0:
                self._pending += data[position:]
                if len(self._pending) > self.max_line_bytes:
                    raise Refused(400, "a chunk-size line of the chunked body is too long")
                return len(data)
            line = bytes(self._pending) + data[position:end]
            position = end + 2
        self._pending.clear()
        if len(line) > self.max_line_bytes:
            raise Refused(400, "a chunk-size line of the chunked body is too long")
        size = _chunk_size(line)
        self.size += size
        if self.size > self.max_body_bytes:
            raise Refused(
                413, f"the request body is larger than the server accepts ({self.max_body_bytes} bytes)"
            )
        if size == 0:
            self._state = self._LAST_END
        else:
            self._left = size
            self._state = self._DATA
        return position


def _chunk_size(line: bytes) -> int:
    """The size a chunk-size line gives, checked as gunicorn checks it."""
    digits, semicolon, extension = line.partition(b";")
    if semicolon:
        if b"\r" in extension:
            raise Refused(400, "a chunk extension of the chunked body holds a bare CR")
        # Blanks are allowed before the extension, and only there.
        digits = digits.rstrip(b" \t")
    if not digits or digits.translate(None, _HEX_DIGITS):
        raise Refused(400, "a chunk size of the chunked body is not a hexadecimal number")
    if semicolon and not CHUNK_EXT_RE.fullmatch(b";" + extension):
        raise Refused(400, "a chunk extension of the chunked body is not valid")
    return int(digits, 16)
