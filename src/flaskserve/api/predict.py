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

Notes for the access log and the metrics are taken at each step, so a request
that fails half-way is still counted against the right model and protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy.typing as npt
from flask import Blueprint, Flask, Response, current_app

from flaskserve.access import MODEL_NAME_HEADER, Access, HeaderLookup, ModelFrom, model_requested
from flaskserve.errors import ModelNotFound
from flaskserve.models.explain import EXPLAIN
from flaskserve.models.registry import ModelRegistry
from flaskserve.models.served import ServedModel
from flaskserve.observability.context import notes
from flaskserve.observability.monitoring import observe_prediction
from flaskserve.protocols.table import ProtocolTable
from flaskserve.protocols.wire import InferenceProtocol, PredictRoute, WireRequest
from flaskserve.runtime import get_runtime
from flaskserve.web.bodies import current_request, read_body, set_model_headers
from flaskserve.web.uploads import unwrap_upload

__all__ = ["init_app"]

View = Callable[..., Response]

_NO_QUERY: dict[str, str] = {}


def init_app(app: Flask, protocols: ProtocolTable) -> None:
    """Declare every protocol's prediction routes on ``app``, each bound to the edge."""
    for protocol in protocols:
        blueprint = Blueprint(f"predict_{protocol.name}", __name__)
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
    # The notes and the request are read once: this runs on every prediction.
    said = notes()
    said.protocol = protocol.name
    req = current_request()
    runtime = get_runtime(current_app)
    model = _resolve(runtime.registry, access, view_args, req.headers)
    said.model, said.version = model.name, model.version
    body, mimetype = unwrap_upload(read_body(req), req.mimetype, req.mimetype_params)
    wire = WireRequest(
        body=body,
        mimetype=mimetype,
        mimetype_params=req.mimetype_params,
        headers=req.headers,
        # Parsed only when there is one: most prediction requests carry no query string.
        query=req.args if req.query_string else _NO_QUERY,
    )
    decoded = protocol.decode(wire, model, runtime.settings.limits)
    methods = (EXPLAIN,) if explains else decoded.methods
    said.method = methods[0] if len(methods) == 1 else ",".join(sorted(methods))
    said.rows = int(decoded.matrix.shape[0])
    results: dict[str, npt.NDArray[Any]] = {}
    for method in methods:
        if explains:
            prediction = runtime.service.explain(model, decoded.matrix)
        else:
            prediction = runtime.service.predict(model, method, decoded.matrix)
        said.cache_hit, said.batch_rows = prediction.cache_hit, prediction.batch_rows
        results[method] = prediction.values
    observe_prediction(model, decoded.matrix, results)
    answer = protocol.encode(decoded, results, model)
    response = Response(answer.body, mimetype=answer.mimetype)
    for name, value in answer.headers.items():
        response.headers[name] = value
    return set_model_headers(response, model)


def _resolve(
    registry: ModelRegistry, access: Access, view_args: dict[str, str], headers: HeaderLookup
) -> ServedModel:
    name, version = model_requested(access, view_args, headers)
    if name is None and access.model_from is ModelFrom.HEADER and registry.default_name is None:
        raise ModelNotFound(
            f"several models are served and none is the default; name one with the {MODEL_NAME_HEADER} "
            f"header (served models: {', '.join(registry.names()[:20])})"
        )
    return registry.resolve(name, version)
