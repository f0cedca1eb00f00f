"""Where a gRPC call enters the app: the same request pipeline, hooks and views as an HTTP request.

Each RPC is the twin of one REST route (``ModelInfer`` of ``POST
/v2/models/{name}/infer``, ``ModelMetadata`` of ``GET /v2/models/{name}``, …).
:func:`dispatch` runs the call as a request to that route inside the app: Flask
routes it, and the app's own hooks do what they do for HTTP — the request id
(from ``x-request-id`` metadata), the repository journal, the API key (from
``authorization: Bearer`` or ``x-api-key`` metadata) against the route's declared
scope, the rate limit, the access log line and the request metrics (with
``protocol="grpc"``) — and the one error handler renders any failure. Nothing of
that is written twice: a rule added to the HTTP edge applies to gRPC at once.

For every RPC but ``ModelInfer`` the route's own view answers, and the servicer
turns its JSON into the RPC's message. ``ModelInfer`` is answered by the
prediction edge (:func:`flaskserve.api.predict.predict`) with the gRPC protocol
of the table, so the body is the serialized message itself, read through the
same body reader and limits, and the batcher and cache are the ones HTTP
requests use in this process.

The answer is a :class:`flask.Response`; :func:`grpc_status` maps its HTTP
status to the gRPC code, the one mapping from the error tree to gRPC.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc
from flask import Flask, Response, request

from flaskserve.observability.context import notes
from flaskserve.runtime import get_runtime

__all__ = ["Call", "dispatch", "grpc_status"]

#: The HTTP status of each refusal, as the gRPC code that means the same.
_CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    # The body limit: gRPC itself answers an oversized message this way.
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

# Metadata gRPC itself sets, which no view should read as a request header.
_TRANSPORT_METADATA = ("grpc-", ":")
# Binary metadata (``-bin``) carries no header a view reads.
_BINARY_SUFFIX = "-bin"


@dataclass(frozen=True)
class Call:
    """One RPC as the request to its twin REST route."""

    method: str
    path: str
    body: bytes = b""
    content_type: str = "application/json"


def dispatch(
    app: Flask,
    call: Call,
    metadata: Iterable[tuple[str, str | bytes]],
    peer: str,
    view: Callable[[], Response] | None = None,
) -> Response:
    """Run ``call`` through ``app``'s request pipeline; ``view`` answers instead of the route's own view.

    Flask's ``full_dispatch_request``, with the view chosen here: the before
    hooks may refuse the call, any exception is rendered by the app's error
    handlers, and the after hooks see the answer the client gets.
    """
    runtime = get_runtime(app)
    environ = _environ(call, metadata, peer)
    runtime.occupancy.enter()
    try:
        with app.request_context(environ):
            # Before any hook: the tracker labels the request's metrics and log line with it.
            notes().protocol = "grpc"
            try:
                answer = app.preprocess_request()
                if answer is None:
                    if request.routing_exception is not None:
                        app.raise_routing_exception(request)
                    answer = view() if view is not None else app.dispatch_request()
            except Exception as error:
                answer = app.handle_user_exception(error)
            return app.finalize_request(answer)
    finally:
        runtime.occupancy.leave()


def grpc_status(status: int) -> grpc.StatusCode:
    """The gRPC code of an HTTP status: a 2xx is OK, an unmapped 4xx is INVALID_ARGUMENT, 5xx INTERNAL."""
    if status < 400:
        return grpc.StatusCode.OK
    found = _CODES.get(status)
    if found is not None:
        return found
    return grpc.StatusCode.INVALID_ARGUMENT if status < 500 else grpc.StatusCode.INTERNAL


def _environ(call: Call, metadata: Iterable[tuple[str, str | bytes]], peer: str) -> dict[str, object]:
    environ: dict[str, object] = {
        "REQUEST_METHOD": call.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": call.path,
        "QUERY_STRING": "",
        "SERVER_NAME": "grpc",
        "SERVER_PORT": "0",
        "SERVER_PROTOCOL": "HTTP/2",
        "REMOTE_ADDR": _address(peer),
        "CONTENT_TYPE": call.content_type,
        "CONTENT_LENGTH": str(len(call.body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(call.body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for key, value in metadata:
        if key.startswith(_TRANSPORT_METADATA) or key.endswith(_BINARY_SUFFIX) or isinstance(value, bytes):
            continue
        if key in ("content-type", "content-length"):
            continue
        environ["HTTP_" + key.upper().replace("-", "_")] = value
    return environ


def _address(peer: str) -> str:
    """The client's address from gRPC's peer string (``ipv4:127.0.0.1:5123``, ``ipv6:[::1]:5123``)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return rest or peer
