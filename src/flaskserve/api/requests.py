"""Reading request bodies the same way for every JSON protocol."""

from __future__ import annotations

from typing import Any

from flask import Response, request

from flaskserve.errors import PayloadTooLarge, UnsupportedMediaType
from flaskserve.models.served import ServedModel
from flaskserve.protocols.payload import decode_json, encode_json


def is_json_mimetype(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")


def read_json(max_depth: int) -> Any:
    """The body as parsed JSON; 415 unless it is declared as JSON (or not declared at all)."""
    mimetype = request.mimetype
    if mimetype and not is_json_mimetype(mimetype):
        raise UnsupportedMediaType(f"expected 'Content-Type: application/json'; got '{mimetype[:60]}'")
    return decode_json(read_body(), max_depth=max_depth)


def read_body() -> bytes:
    """The raw body, refusing (not truncating) a chunked body that reaches the size limit.

    Werkzeug stops reading a body without Content-Length at the limit and returns
    what it has; a body that fills the limit exactly is therefore refused with 413.
    """
    body = request.get_data(cache=False)
    limit = request.max_content_length
    if limit is not None and request.content_length is None and len(body) >= limit:
        raise PayloadTooLarge()
    return body


def json_response(document: Any, status: int = 200, model: ServedModel | None = None) -> Response:
    response = Response(encode_json(document), status=status, mimetype="application/json")
    if model is not None:
        response.headers["X-Model-Name"] = model.name
        response.headers["X-Model-Version"] = model.version
    return response
