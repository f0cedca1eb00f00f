"""The prediction edge: the one path every prediction request takes, whatever its protocol.

For each route a protocol declares, :func:`init_app` adds a rule bound to one
view that does the whole ritual:

1. resolve the model the route names (path, header or the default — the same
   reading authentication checked the key against);
2. read the body through :func:`~flaskserve.web.bodies.read_body`, which holds
   every size and encoding limit (a multipart upload's file then stands for the body);
3. let the protocol decode it against the model's signature;
4. call the inference service once per method the request asks for;
5. let the protocol encode the answer, and name the model version that gave it.

With the model's cache on, steps 3 to 5 are skipped for a request whose form
(protocol, media type, the headers the protocol reads, body bytes) asked before
and whose answer is still cached: its kept reply is sent again
(:mod:`flaskserve.inference.replay`), counted, logged and monitored as the hit it is.

Notes for the access log and the metrics are taken at each step, so a request
that fails half-way is still counted against the right model and protocol.

The ritual itself (:func:`answer`) reads the request through a small
framework-free view (:class:`Asked`): the Flask view and the prediction lane
(:mod:`flaskserve.api.lane`) both call it, so there is one prediction path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt
from flask import Blueprint, Flask, Response, current_app

from flaskserve.access import MODEL_NAME_HEADER, Access, HeaderLookup, ModelFrom, model_requested
from flaskserve.errors import ModelNotFound
from flaskserve.inference.replay import Replay, form_key
from flaskserve.inference.service import InferenceService
from flaskserve.models.explain import EXPLAIN
from flaskserve.models.registry import ModelRegistry
from flaskserve.models.served import ServedModel
from flaskserve.observability.context import RequestNotes, notes
from flaskserve.observability.monitoring import observe_prediction
from flaskserve.protocols.table import ProtocolTable
from flaskserve.protocols.wire import InferenceProtocol, PredictRoute, WireRequest, WireResponse
from flaskserve.runtime import Runtime, get_runtime
from flaskserve.web.bodies import current_request, read_body, set_model_headers
from flaskserve.web.uploads import unwrap_upload

__all__ = ["Asked", "Observe", "answer", "blueprint_name", "init_app", "predict"]

View = Callable[..., Response]
#: What the edge tells monitoring of each prediction: the model, the validated matrix, the answers.
Observe = Callable[[ServedModel, npt.NDArray[Any], Mapping[str, npt.NDArray[Any]]], None]

_NO_QUERY: dict[str, str] = {}


def init_app(app: Flask, protocols: ProtocolTable) -> None:
    """Declare every protocol's prediction routes on ``app``, each bound to the edge."""
    for protocol in protocols:
        blueprint = Blueprint(blueprint_name(protocol), __name__)
        views: dict[str, View] = {}
        for route in protocol.routes:
            view = views.get(route.endpoint)
            if view is None:
                view = views[route.endpoint] = _edge_view(protocol, route)
            blueprint.add_url_rule(
                route.rule,
                route.endpoint,
                view,
                methods=["POST"],
                access=route.access,
                operation=route.operation,
            )
        app.register_blueprint(blueprint)


def blueprint_name(protocol: InferenceProtocol[Any]) -> str:
    """The blueprint of a protocol's routes: the ``protocol`` label of a request refused before its view."""
    return f"predict_{protocol.name}"


@dataclass(frozen=True)
class Asked:
    """A prediction request as the edge reads it, whichever framework carried it.

    ``read_body`` reads the body within every limit; it is called only once the
    model is resolved, so a request for an unknown model leaves its body unread.
    """

    view_args: Mapping[str, str]
    headers: HeaderLookup
    mimetype: str
    mimetype_params: Mapping[str, str]
    query: Mapping[str, str]
    read_body: Callable[[], bytes]


def _edge_view(protocol: InferenceProtocol[Any], route: PredictRoute) -> View:
    access, explains = route.access, route.explains

    def view(**view_args: str) -> Response:
        return predict(protocol, access, view_args, explains=explains)

    view.__doc__ = route.operation.summary
    return view


def predict(
    protocol: InferenceProtocol[Any], access: Access, view_args: dict[str, str], *, explains: bool = False
) -> Response:
    """Answer one prediction request with ``protocol``; errors propagate to the one error handler.

    An explain route runs the ``explain`` method instead of the methods the body asks for.
    """
    # The request is read once: this runs on every prediction.
    req = current_request()
    asked = Asked(
        view_args=view_args,
        headers=req.headers,
        mimetype=req.mimetype,
        mimetype_params=req.mimetype_params,
        # Parsed only when there is one: most prediction requests carry no query string.
        query=req.args if req.query_string else _NO_QUERY,
        read_body=lambda: read_body(req),
    )
    reply, model = answer(
        get_runtime(current_app), protocol, access, asked, notes(), observe_prediction, explains=explains
    )
    response = Response(reply.body, mimetype=reply.mimetype)
    for name, value in reply.headers.items():
        response.headers[name] = value
    return set_model_headers(response, model)


def answer(
    runtime: Runtime,
    protocol: InferenceProtocol[Any],
    access: Access,
    asked: Asked,
    said: RequestNotes,
    observe: Observe,
    *,
    explains: bool = False,
) -> tuple[WireResponse, ServedModel]:
    """The protocol's answer to ``asked`` and the model that gave it; errors propagate.

    Framework-free: what is learnt on the way is noted in ``said``, and each
    prediction is passed to ``observe`` for monitoring.
    """
    said.protocol = protocol.name
    model = _resolve(runtime.registry, access, asked.view_args, asked.headers)
    said.model, said.version = model.name, model.version
    raw = asked.read_body()
    service = runtime.service
    form = _form(service, model, protocol, asked, raw, explains)
    read: _HeadersRead | None = None
    if form is not None:
        replay = service.replay(model, form)
        if replay is not None:
            said.method, said.rows, said.cache_hit, said.batch_rows = replay.method, replay.rows, True, 0
            observe(model, replay.matrix, replay.results)
            return replay.reply, model
        read = _HeadersRead(asked.headers)
    body, mimetype = unwrap_upload(raw, asked.mimetype, asked.mimetype_params)
    wire = WireRequest(
        body=body,
        mimetype=mimetype,
        mimetype_params=asked.mimetype_params,
        headers=read if read is not None else asked.headers,
        query=asked.query,
    )
    decoded = protocol.decode(wire, model, runtime.settings.limits)
    methods = (EXPLAIN,) if explains else decoded.methods
    said.method = methods[0] if len(methods) == 1 else ",".join(sorted(methods))
    said.rows = int(decoded.matrix.shape[0])
    results: dict[str, npt.NDArray[Any]] = {}
    for method in methods:
        if explains:
            prediction = service.explain(model, decoded.matrix)
        else:
            prediction = service.predict(model, method, decoded.matrix)
        said.cache_hit, said.batch_rows = prediction.cache_hit, prediction.batch_rows
        results[method] = prediction.values
    observe(model, decoded.matrix, results)
    reply = protocol.encode(decoded, results, model)
    # Kept only for one method, an answer the cache holds, and headers read that the protocol declares.
    if (
        form is not None
        and read is not None
        and len(methods) == 1
        and prediction.cache_key is not None
        and read.only(protocol.answer_headers)
    ):
        rows = decoded.matrix.view()
        rows.flags.writeable = False
        service.remember(model, form, prediction, Replay(reply, methods[0], rows, results))
    return reply, model


def _form(
    service: InferenceService,
    model: ServedModel,
    protocol: InferenceProtocol[Any],
    asked: Asked,
    body: bytes,
    explains: bool,
) -> bytes | None:
    """The request's form key (:func:`~flaskserve.inference.replay.form_key`), if its answer may be kept.

    None when the model has no cache, or the request has a query string (rare, and left to the full path).
    """
    if asked.query or not service.cache_entries(model):
        return None
    headers = tuple(asked.headers.get(name) for name in protocol.answer_headers)
    return form_key(protocol.name, explains, asked.mimetype, asked.mimetype_params, headers, body)


class _HeadersRead:
    """A request's headers that note the names the protocol reads, so a reply that depends on one
    the protocol does not declare in ``answer_headers`` is never kept."""

    __slots__ = ("_headers", "_read")

    def __init__(self, headers: HeaderLookup) -> None:
        self._headers = headers
        self._read: set[str] = set()

    def get(self, key: str, /) -> str | None:
        self._read.add(key.lower())
        return self._headers.get(key)

    def only(self, declared: tuple[str, ...]) -> bool:
        """Whether every header read is one of ``declared``."""
        return self._read <= {name.lower() for name in declared}


def _resolve(
    registry: ModelRegistry, access: Access, view_args: Mapping[str, str], headers: HeaderLookup
) -> ServedModel:
    name, version = model_requested(access, view_args, headers)
    if name is None and access.model_from is ModelFrom.HEADER and registry.default_name is None:
        raise ModelNotFound(
            f"several models are served and none is the default; name one with the {MODEL_NAME_HEADER} "
            f"header (served models: {', '.join(registry.names()[:20])})"
        )
    return registry.resolve(name, version)
