"""The Open Inference Protocol (KServe V2) over REST: server and model metadata, readiness.

Health routes live in :mod:`flaskserve.api.health`; inference
(``POST /v2/models/{name}/infer``) is declared by
:mod:`flaskserve.protocols.v2.protocol` and answered by the prediction edge.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from flaskserve.access import OPEN, READ
from flaskserve.errors import BadRequest, ModelNotReady, clip
from flaskserve.models.registry import ModelState
from flaskserve.protocols import v2
from flaskserve.protocols.openapi import Operation, Parameter
from flaskserve.runtime import get_runtime
from flaskserve.web.bodies import json_response

blueprint = Blueprint("v2", __name__)

_NOT_READY = (404, 503)
_CONTENT_TYPES = ("np", "pd")

_MODEL_METADATA = Operation(
    "Model metadata: input and output tensors",
    "v2",
    response={"application/json": v2.ModelMetadata},
    errors=_NOT_READY,
    parameters=(
        Parameter(
            "content_type",
            "np (default): one [-1, n_features] input; pd: one input per feature.",
            {"type": "string", "enum": list(_CONTENT_TYPES)},
        ),
    ),
)
_MODEL_READY = Operation(
    "Model readiness (200 ready, 503 not ready)",
    "v2",
    response={"application/json": v2.Readiness},
    success_statuses=(200, 503),
    errors=(404,),
)


@blueprint.get(
    "/v2",
    access=READ,
    operation=Operation(
        "Server metadata and the protocol extensions it implements",
        "v2",
        response={"application/json": v2.ServerMetadata},
    ),
)
def server_metadata() -> Response:
    return json_response(v2.server_metadata())


@blueprint.get("/v2/models/<name>", access=READ, operation=_MODEL_METADATA)
@blueprint.get("/v2/models/<name>/versions/<version>", access=READ, operation=_MODEL_METADATA)
def model_metadata(name: str, version: str | None = None) -> Response:
    """Metadata of a model version; ``?content_type=pd`` lists one input per feature."""
    registry = get_runtime(current_app).registry
    model = registry.resolve(name, version)
    versions = [entry.version for entry in registry.entries(name)] if version is None else None
    content_type = request.args.get("content_type", "np")
    if content_type not in _CONTENT_TYPES:
        raise BadRequest(f"content_type must be 'np' or 'pd'; got '{clip(content_type)}'")
    return json_response(v2.model_metadata(model, versions=versions, content_type=content_type), model=model)


# Readiness probes: orchestrators call them without credentials.
@blueprint.get("/v2/models/<name>/ready", access=OPEN, operation=_MODEL_READY)
@blueprint.get("/v2/models/<name>/versions/<version>/ready", access=OPEN, operation=_MODEL_READY)
def model_ready(name: str, version: str | None = None) -> Response:
    entry = get_runtime(current_app).registry.entry(name, version)
    ready = entry.state is ModelState.READY and entry.model is not None
    body = {"name": name, "version": entry.version, "ready": ready}
    return json_response(body, status=200 if ready else ModelNotReady.status)
