"""Request bodies in, JSON answers out: the one reader every route that takes a body uses.

Every route that reads a body calls :func:`read_body` (the prediction lane, which
has no Flask request, :func:`read_declared_body`), so every limit holds on every
route: the declared size (Werkzeug answers 413 for a ``Content-Length`` over
``MAX_CONTENT_LENGTH``), the size of a chunked body (refused, never cut), a body
shorter than its ``Content-Length`` (refused, never answered for what came), and
the encoding (compressed bodies are refused rather than parsed as garbage).

A request refused before its body is read (an unknown model, a bad key, a wrong
media type, a declared size over the limit) leaves that body unread. granian then
closes the connection after the answer unless the body had all arrived, and the
answer did not say so: a client that sent its next request on the connection lost
it ("Remote end closed connection without response"; docs/reliability.md, "Soak").
:func:`close_if_body_unread` marks such answers ``Connection: close`` (RFC 9112,
section 9.6), so clients open a new connection instead. gunicorn drops that
header from an app; its worker reads past the unread rest instead, which it
already holds (:mod:`flaskserve.serving.gthread`).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from flask import Flask, Request, Response, request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

from flaskserve.access import MODEL_NAME_HEADER, MODEL_VERSION_HEADER
from flaskserve.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from flaskserve.models.served import ServedModel
from flaskserve.protocols.payload import decode_json, encode_json, is_json_mimetype
from flaskserve.web.header_list import MutableHeaders

__all__ = [
    "close_if_body_unread",
    "current_request",
    "init_app",
    "json_response",
    "must_close",
    "name_model",
    "read_body",
    "read_declared_body",
    "read_optional_json",
    "refuse_compressed",
    "refuse_cut_body",
    "set_model_headers",
]

_IDENTITY = "identity"
#: Set in the WSGI environ once the whole body has been read.
_BODY_READ = "flaskserve.body_read"


def current_request() -> Request:
    """The request object itself, for code that reads it many times per request.

    Each read of Flask's ``request`` goes through a context-local proxy; the hot
    path reads the object once.
    """
    found: Request = request._get_current_object()  # type: ignore[attr-defined]
    return found


def read_body(req: Request | None = None) -> bytes:
    """The raw body, refusing (not truncating) a chunked body that reaches the size limit.

    Werkzeug stops reading a body without Content-Length at the limit and returns
    what it has; a cut CSV or JSON array can still parse, so a body that fills the
    limit exactly is refused with 413 rather than answered for its first part, and
    a declared body that ended early is refused too (:func:`refuse_cut_body`).
    ``req`` is the current request unless given.
    """
    req = req if req is not None else current_request()
    refuse_compressed(req.environ)
    declared = req.content_length
    try:
        body = req.get_data(cache=False)
    except ClientDisconnected:
        # Werkzeug's own refusal of a stream the server did not end itself: the same answer.
        raise _cut_body(declared or 0) from None
    limit = req.max_content_length
    if limit is not None and declared is None and len(body) >= limit:
        raise PayloadTooLarge()
    refuse_cut_body(len(body), declared)
    req.environ[_BODY_READ] = True
    return body


def refuse_compressed(environ: MutableMapping[str, Any]) -> None:
    """Refuse a compressed body: parsed as it came, it would be garbage, or a decompression bomb."""
    encoding = environ.get("HTTP_CONTENT_ENCODING")
    if encoding is not None and encoding.strip().lower() not in ("", _IDENTITY):
        raise UnsupportedMediaType("compressed request bodies are not accepted; send the body uncompressed")


def read_declared_body(environ: dict[str, Any], limit: int) -> bytes:
    """The body of a request that declares its ``Content-Length``, read from the WSGI environ itself.

    For code that serves a request without a Flask request (the prediction lane),
    with the limits :func:`read_body` keeps: 413 for a declared size over ``limit``
    before a byte is read, compressed bodies refused, and a body that ends before
    its declared size refused (:func:`refuse_cut_body`). A length of plain digits
    (every length gunicorn and granian let through) is read straight from
    ``wsgi.input``: Werkzeug's stream wrapper cost ten times the read itself
    (docs/performance.md, "The access line and the body read, second pass"). Any
    other length goes through Werkzeug as before (which reads most of them as 0).
    A body without ``Content-Length`` (chunked) is left to :func:`read_body`.
    """
    refuse_compressed(environ)
    declared: str = environ.get("CONTENT_LENGTH", "")
    if not (declared.isascii() and declared.isdigit()):
        try:
            body = get_input_stream(environ, max_content_length=limit).read()
        except RequestEntityTooLarge:
            raise PayloadTooLarge() from None
    else:
        length = int(declared)
        if length > limit:
            raise PayloadTooLarge()
        body = _read_exactly(environ["wsgi.input"], length)
    environ[_BODY_READ] = True
    return body


def _read_exactly(stream: Any, length: int) -> bytes:
    """``length`` bytes of ``stream``, refusing a stream that ends before them."""
    body: bytes = stream.read(length) if length else b""
    # A stream may hand a body over in parts; the servers' own hand it over whole.
    while len(body) < length and (more := stream.read(length - len(body))):
        body += more
    refuse_cut_body(len(body), length)
    return body


def refuse_cut_body(received: int, declared: int | None) -> None:
    """Refuse a body that ended before its ``Content-Length``: the client stopped sending it.

    gunicorn and granian both hand the application the bytes that came and then
    the end of the stream, and Werkzeug, told the server ends the stream itself
    (``wsgi.input_terminated``), reads up to that end: a cut body that still
    parses (a JSON document followed by blanks, a CSV cut after a row) was
    answered for what came. It is refused with 400 instead; the body counts as
    unread, so the answer also closes the connection (:func:`close_if_body_unread`).
    """
    if declared is not None and received < declared:
        raise _cut_body(declared)


def _cut_body(declared: int) -> BadRequest:
    return BadRequest(f"the request body ended before the {declared} bytes its Content-Length declares")


def init_app(app: Flask) -> None:
    app.after_request(close_if_body_unread)


def close_if_body_unread(response: Response) -> Response:
    """Tell the client the connection closes when the request's body was never read whole.

    A request declares a body with a ``Content-Length`` other than 0 or with a
    ``Transfer-Encoding``. PEP 3333 leaves hop-by-hop headers to the server, but
    granian has no other way to hear it: it passes the header on and closes, as it
    would have anyway. gunicorn leaves the header out and keeps the connection.

    Only refusals (400 and above) are looked at: every route that takes a body
    reads it before it can succeed, and the request proxy this needs cost about
    ten times the status check on every answer (docs/reliability.md, "Soak").
    """
    if response.status_code >= 400 and must_close(request.environ):
        response.headers["Connection"] = "close"
    return response


def must_close(environ: MutableMapping[str, Any]) -> bool:
    """Whether a refused request declared a body that was never read (see :func:`close_if_body_unread`)."""
    if _BODY_READ in environ:
        return False
    length = environ.get("CONTENT_LENGTH")
    return bool(length and length != "0") or "HTTP_TRANSFER_ENCODING" in environ


def read_optional_json(max_depth: int, absent: Any = None) -> Any:
    """The parsed JSON body, or ``absent`` when there is none (for requests whose body is optional).

    A body of JSON ``null`` is a body, parsed as ``None``: give ``absent`` a value of
    its own to tell the two apart. So is a body of blanks, which is no JSON document.
    """
    body = read_body()
    if not body:
        return absent
    if request.mimetype and not is_json_mimetype(request.mimetype):
        raise UnsupportedMediaType(
            f"expected 'Content-Type: application/json'; got '{request.mimetype[:60]}'"
        )
    return decode_json(body, max_depth=max_depth)


def set_model_headers(response: Response, model: ServedModel) -> Response:
    """Name the model version that answered, on every protocol's answer."""
    name_model(response.headers, model)
    return response


def name_model(headers: MutableHeaders, model: ServedModel) -> None:
    """:func:`set_model_headers` on an answer's headers alone."""
    headers[MODEL_NAME_HEADER] = model.name
    headers[MODEL_VERSION_HEADER] = model.version


def json_response(document: Any, status: int = 200, model: ServedModel | None = None) -> Response:
    response = Response(encode_json(document), status=status, mimetype="application/json")
    if model is not None:
        set_model_headers(response, model)
    return response
