"""The one place where errors become HTTP responses, below both the API and the security layer.

Every error leaves as JSON ``{"error": message, "code": code}``; Flask's HTML
error pages never reach a client. Anything that is not a
:class:`~flaskserve.errors.FlaskserveError` or an HTTP error is logged with its
traceback and an error id, and the client gets a 500 with only that id.
Protocols whose error body differs (they all use ``{"error": ...}``) need no
special case.
"""

from __future__ import annotations

import logging
import uuid

from flask import Flask, Response
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from flaskserve.errors import FlaskserveError, PayloadTooLarge, PredictionFailed
from flaskserve.protocols.payload import encode_json

log = logging.getLogger("flaskserve.api")

__all__ = ["ERROR_ID_HEADER", "error_response", "register_error_handlers", "render_any", "render_error"]

#: The id of a 500, sent to the client and logged with the traceback, to join the two.
ERROR_ID_HEADER = "X-Error-Id"

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    response = Response(
        encode_json({"error": message, "code": code}), status=status, mimetype="application/json"
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def render_error(error: FlaskserveError) -> Response:
    """Any error of the tree as its JSON answer; extensions that refuse a request use it too."""
    response = error_response(error.status, error.code, error.message, error.headers)
    if isinstance(error, PredictionFailed):
        response.headers[ERROR_ID_HEADER] = error.error_id
    return response


def handle_http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if isinstance(error, RequestEntityTooLarge):
        return render_error(PayloadTooLarge())
    message = _HTTP_MESSAGES.get(status) or (error.description or error.name)
    response = error_response(status, _HTTP_CODES.get(status, "http_error"), message)
    for name, value in error.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def handle_unexpected(error: Exception) -> Response:
    error_id = uuid.uuid4().hex[:16]
    log.error("unhandled error", exc_info=error, extra={"error_id": error_id})
    response = error_response(500, "internal_error", f"internal server error (error id {error_id})")
    response.headers[ERROR_ID_HEADER] = error_id
    return response


_HTTP_MESSAGES = {
    404: "no such route; GET / lists what this server offers",
    405: "this route does not accept that HTTP method",
}


def render_any(error: Exception) -> Response:
    """The answer the handlers :func:`register_error_handlers` installs give ``error``.

    For code that serves a request outside Flask's dispatch (the prediction lane):
    the same three handlers, chosen in the order Flask would choose them.
    """
    if isinstance(error, FlaskserveError):
        return render_error(error)
    if isinstance(error, HTTPException):
        return handle_http_error(error)
    return handle_unexpected(error)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(FlaskserveError, render_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
