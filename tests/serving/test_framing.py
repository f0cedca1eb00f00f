"""Where a request body ends, as the gunicorn worker judges it before a thread parses the request.

The worker reads whole requests in its event loop, so it must agree with
gunicorn's parser, which reads them again in the thread: never read as body what
gunicorn reads as a next request, and refuse (400) what gunicorn's chunked reader
would fail on inside the app. The chunked cases are checked against gunicorn's
own reader, and fed in every split a socket could deliver.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from gunicorn.http.body import ChunkedReader
from gunicorn.http.errors import ParseException
from gunicorn.http.unreader import IterUnreader

from flaskserve.serving.gthread.framing import BodyFraming, ChunkedBody, Refused, body_framing

LIMIT = 1000
LINE_LIMIT = 8190
NEXT = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"


def head(*fields: str, request_line: str = "POST /predict HTTP/1.1") -> bytes:
    return "\r\n".join([request_line, "Host: x", *fields]).encode()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param((), BodyFraming(), id="no body"),
        pytest.param(("Content-Length: 12",), BodyFraming(length=12), id="content-length"),
        pytest.param(("content-length:  007 ",), BodyFraming(length=7), id="any case, blanks, zeros"),
        pytest.param(("Content-Length: 0",), BodyFraming(), id="empty body"),
        pytest.param(("Transfer-Encoding: chunked",), BodyFraming(chunked=True), id="chunked"),
        pytest.param(("Transfer-Encoding: gzip, chunked",), BodyFraming(chunked=True), id="chunked last"),
        pytest.param(
            ("Content-Length: 5", "Expect: 100-Continue"),
            BodyFraming(length=5, expects_continue=True),
            id="expects 100-continue",
        ),
        # Refused by gunicorn before it reads a body: no body is read for them here.
        pytest.param(
            ("Content-Length: 5", "Transfer-Encoding: chunked"), BodyFraming(), id="length and chunked"
        ),
        pytest.param(("Content-Length: 0", "Content-Length: 5"), BodyFraming(), id="two lengths"),
        pytest.param(("Content-Length: 5", "Content-Length: 5"), BodyFraming(), id="two equal lengths"),
        pytest.param(("Transfer-Encoding: chunked, identity",), BodyFraming(), id="identity after chunked"),
        pytest.param(("Transfer-Encoding: chunked", "Transfer-Encoding: chunked"), BodyFraming(), id="twice"),
        pytest.param(("Transfer-Encoding: gzip",), BodyFraming(), id="not chunked"),
        pytest.param(("Content-Length: +5",), BodyFraming(), id="signed length"),
        pytest.param(("Content-Length: ²",), BodyFraming(), id="non-ASCII digit"),
        pytest.param(("Content-Length : 5",), BodyFraming(), id="blank before the colon"),
    ],
)
def test_the_head_says_how_the_body_is_framed(fields: tuple[str, ...], expected: BodyFraming) -> None:
    raw = "\r\n".join(["POST /predict HTTP/1.1", "Host: x", *fields]).encode("latin-1")
    assert body_framing(raw, LIMIT) == expected


def test_an_http_1_0_request_is_never_read_as_chunked() -> None:
    raw = head("Transfer-Encoding: chunked", request_line="POST /predict HTTP/1.0")
    assert body_framing(raw, LIMIT) == BodyFraming()


def test_empty_lines_before_the_request_line_are_ignored() -> None:
    assert body_framing(b"\r\n" + head("Content-Length: 3"), LIMIT) == BodyFraming(length=3)


def test_a_declared_length_over_the_limit_is_refused_with_a_413() -> None:
    with pytest.raises(Refused) as refused:
        body_framing(head(f"Content-Length: {LIMIT + 1}"), LIMIT)
    assert refused.value.status == 413
    assert body_framing(head(f"Content-Length: {LIMIT}"), LIMIT) == BodyFraming(length=LIMIT)


def test_a_method_longer_than_gunicorn_accepts_is_refused_with_a_400() -> None:
    with pytest.raises(Refused) as refused:
        body_framing(head(request_line="M" * 10_000 + " /predict HTTP/1.1"), LIMIT)
    assert refused.value.status == 400


def gunicorn_reads(raw: bytes) -> tuple[bytes, bytes]:
    """What gunicorn's chunked reader makes of ``raw``: the body, and what it leaves for the next request."""
    unreader = IterUnreader([raw])
    reader = ChunkedReader(SimpleNamespace(limit_request_field_size=LINE_LIMIT), unreader)
    body = bytearray()
    while chunk := reader.read(65536):
        body += chunk
    return bytes(body), unreader.read() or b""


def splits(raw: bytes) -> list[list[bytes]]:
    """``raw`` whole, byte by byte, and cut once at every position."""
    return [[raw], [raw[i : i + 1] for i in range(len(raw))]] + [
        [raw[:i], raw[i:]] for i in range(1, len(raw))
    ]


def where_it_ends(pieces: list[bytes]) -> tuple[int, int]:
    """Fed ``pieces`` in turn: where in the whole the body ends, and the data size it counted."""
    body = ChunkedBody(LIMIT, LINE_LIMIT)
    offset = 0
    for piece in pieces:
        ends_at = body.feed(piece)
        if ends_at is not None:
            return offset + ends_at, body.size
        offset += len(piece)
    raise AssertionError("the body never ended")


VALID = [
    pytest.param(b"5\r\nhello\r\n0\r\n\r\n", id="one chunk"),
    pytest.param(b"3\r\nabc\r\n1\r\nd\r\n00\r\n\r\n", id="two chunks, zeros"),
    pytest.param(b"A\r\n0123456789\r\n0\r\n\r\n", id="upper-case hex"),
    pytest.param(b"4;name=value\r\nabcd\r\n0;last\r\n\r\n", id="extensions"),
    pytest.param(b'4 \t;q="a b"\r\nabcd\r\n0\r\n\r\n', id="blanks before an extension"),
    pytest.param(b"2\r\n\r\n\r\n0\r\n\r\n", id="data that looks like CRLF"),
    pytest.param(b"0\r\n\r\n", id="empty"),
]


@pytest.mark.parametrize("raw", VALID)
def test_the_end_of_a_chunked_body_is_found_wherever_the_reads_split_it(raw: bytes) -> None:
    data, left = gunicorn_reads(raw + NEXT)
    assert left == NEXT
    for pieces in splits(raw + NEXT):
        assert where_it_ends(pieces) == (len(raw), len(data)), pieces


#: Malformed or too large chunked bodies, their status, and whether gunicorn's own reader fails on them
#: (inside the app, where that was a 500); the others it would accept, or read without end.
INVALID = [
    pytest.param(b"zz\r\n{}\r\n0\r\n\r\n", 400, True, id="garbage size"),
    pytest.param(b"\r\nabc\r\n0\r\n\r\n", 400, True, id="no size"),
    pytest.param(b"5 \r\nhello\r\n0\r\n\r\n", 400, True, id="blank without an extension"),
    pytest.param(b"-5\r\nhello\r\n0\r\n\r\n", 400, True, id="negative size"),
    pytest.param(b"0x5\r\nhello\r\n0\r\n\r\n", 400, True, id="0x prefix"),
    pytest.param(b"5\r\nhelloXX0\r\n\r\n", 400, True, id="no CRLF after the data"),
    pytest.param(b"5;a\rb\r\nhello\r\n0\r\n\r\n", 400, True, id="bare CR in an extension"),
    pytest.param(b"5;=x\r\nhello\r\n0\r\n\r\n", 400, True, id="extension without a name"),
    pytest.param(b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n", 400, False, id="trailer fields"),
    pytest.param(b"1" * (LINE_LIMIT + 1) + b"\r\n", 400, False, id="size line too long"),
    pytest.param(
        b"%x\r\n" % (LIMIT + 1) + b"a" * (LIMIT + 1) + b"\r\n0\r\n\r\n", 413, False, id="over the limit"
    ),
    pytest.param(b"ffffffffffffffffffff\r\n", 413, False, id="absurd size"),
]


def feed_all(pieces: list[bytes]) -> None:
    body = ChunkedBody(LIMIT, LINE_LIMIT)
    for piece in pieces:
        assert body.feed(piece) is None


@pytest.mark.parametrize(("raw", "status", "gunicorn_fails"), INVALID)
def test_a_chunked_body_gunicorn_would_fail_on_is_refused_before_the_app(
    raw: bytes, status: int, gunicorn_fails: bool
) -> None:
    if gunicorn_fails:
        with pytest.raises(ParseException):
            gunicorn_reads(raw + NEXT)
    for pieces in splits(raw + NEXT)[:2]:
        with pytest.raises(Refused) as refused:
            feed_all(pieces)
        assert refused.value.status == status
