"""Routes of KServe V1 / TensorFlow Serving REST.

The ``:predict`` verb is part of the last path segment, as TensorFlow Serving
spells it: ``POST /v1/models/iris:predict``.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from flaskserve.api.requests import json_response, read_json
from flaskserve.errors import ModelNotReady
from flaskserve.models.registry import ModelState
from flaskserve.observability.context import note
from flaskserve.protocols import v1
from flaskserve.protocols.openapi import Operation
from flaskserve.runtime import get_runtime

blueprint = Blueprint("v1", __name__)


@blueprint.get("/v1/models")
def list_models() -> Response:
    return json_response({"models": get_runtime(current_app).registry.names()})


@blueprint.get("/v1/models/<name>")
def model_status(name: str) -> Response:
    entry = get_runtime(current_app).registry.entry(name)
    ready = entry.state is ModelState.READY and entry.model is not None
    return json_response({"name": name, "ready": ready}, status=200 if ready else ModelNotReady.status)


@blueprint.post("/v1/models/<name>:predict")
@blueprint.post("/v1/models/<name>/versions/<version>:predict")
def predict(name: str, version: str | None = None) -> Response:
    runtime = get_runtime(current_app)
    model = runtime.registry.resolve(name, version)
    note(model=model.name, version=model.version, protocol="v1")
    payload = read_json(runtime.settings.limits.max_json_depth)
    decoded = v1.decode_request(payload, model.signature, default_method=model.default_method)
    note(method=decoded.method, rows=int(decoded.matrix.shape[0]))
    prediction = runtime.service.predict(model, decoded.method, decoded.matrix)
    note(cache_hit=prediction.cache_hit, batch_rows=prediction.batch_rows)
    return json_response(v1.encode_response(prediction.values, decoded), model=model)


OPERATIONS: dict[str, Operation] = {
    "v1.list_models": Operation("Served model names", "v1", response={"application/json": v1.ModelList}),
    "v1.model_status": Operation(
        "Model readiness (200 ready, 503 not ready)",
        "v1",
        response={"application/json": v1.ModelStatus},
        success_statuses=(200, 503),
        errors=(404,),
    ),
    "v1.predict": Operation(
        "Predict: rows (instances) answer predictions, columns (inputs) answer outputs",
        "v1",
        request={"application/json": v1.PredictRequest},
        response={"application/json": (v1.RowAnswer, v1.ColumnAnswer)},
        errors=(404, 413, 415, 500, 503),
    ),
}
