"""KServe V1 / TensorFlow Serving REST: the model list and readiness.

Predictions (``POST /v1/models/iris:predict`` — the verb is part of the last
path segment, as TensorFlow Serving spells it) are declared by
:mod:`flaskserve.protocols.v1` and answered by the prediction edge.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from flaskserve.access import READ
from flaskserve.errors import ModelNotReady
from flaskserve.models.registry import ModelState
from flaskserve.protocols import v1
from flaskserve.protocols.openapi import Operation
from flaskserve.runtime import get_runtime
from flaskserve.web.bodies import json_response

blueprint = Blueprint("v1", __name__)


@blueprint.get(
    "/v1/models",
    access=READ,
    operation=Operation("Served model names", "v1", response={"application/json": v1.ModelList}),
)
def list_models() -> Response:
    return json_response({"models": get_runtime(current_app).registry.names()})


@blueprint.get(
    "/v1/models/<model:name>",
    access=READ,
    operation=Operation(
        "Model readiness (200 ready, 503 not ready)",
        "v1",
        response={"application/json": v1.ModelStatus},
        success_statuses=(200, 503),
        errors=(404,),
    ),
)
def model_status(name: str) -> Response:
    entry = get_runtime(current_app).registry.entry(name)
    ready = entry.state is ModelState.READY and entry.model is not None
    return json_response({"name": name, "ready": ready}, status=200 if ready else ModelNotReady.status)
