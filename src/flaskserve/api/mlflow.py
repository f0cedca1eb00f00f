"""Routes of the MLflow scoring server, so ``mlflow models serve`` clients work unchanged.

With one model (or a configured default model) ``POST /invocations`` serves it,
exactly like ``mlflow models serve``. With several, a request picks its model
with the ``X-Model-Name`` header, and optionally a version with
``X-Model-Version`` — the same headers every answer carries. A header rather
than a path, so that an MLflow client only needs an extra header, not a new URL.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

import flaskserve
from flaskserve.api.requests import json_response
from flaskserve.errors import ModelNotFound
from flaskserve.observability.context import note
from flaskserve.protocols import mlflow
from flaskserve.protocols.openapi import Operation, Parameter
from flaskserve.runtime import get_runtime

blueprint = Blueprint("mlflow", __name__)

MODEL_HEADER = "X-Model-Name"
VERSION_HEADER = "X-Model-Version"


@blueprint.get("/ping")
@blueprint.get("/health")
def ping() -> Response:
    """200 once every model is loaded, as MLflow's load balancer probes expect."""
    ready = get_runtime(current_app).registry.is_ready()
    return json_response({"ready": ready}, status=200 if ready else 503)


@blueprint.get("/version")
def version() -> Response:
    return Response(flaskserve.__version__, mimetype="text/plain")


@blueprint.post("/invocations")
def invocations() -> Response:
    runtime = get_runtime(current_app)
    mimetype = mlflow.check_media_type(request.mimetype, request.mimetype_params.get("charset"))
    name = request.headers.get(MODEL_HEADER) or None
    if name is None and runtime.registry.default_name is None:
        raise ModelNotFound(
            f"several models are served and none is the default; name one with the {MODEL_HEADER} "
            f"header (served models: {', '.join(runtime.registry.names()[:20])})"
        )
    model = runtime.registry.resolve(name, request.headers.get(VERSION_HEADER) or None)
    note(model=model.name, version=model.version, protocol="mlflow")
    decoded = mlflow.decode_request(
        request.get_data(cache=False),
        mimetype,
        model.signature,
        runtime.settings.limits,
        default_method=model.default_method,
    )
    note(method=decoded.method, rows=int(decoded.matrix.shape[0]))
    prediction = runtime.service.predict(model, decoded.method, decoded.matrix)
    note(cache_hit=prediction.cache_hit, batch_rows=prediction.batch_rows)
    return json_response(mlflow.encode_response(prediction.values), model=model)


OPERATIONS: dict[str, Operation] = {
    "mlflow.ping": Operation(
        "MLflow health check (200 once the models are loaded)",
        "mlflow",
        response={"application/json": {"type": "object", "properties": {"ready": {"type": "boolean"}}}},
        success_statuses=(200, 503),
    ),
    "mlflow.version": Operation(
        "Server version, as text", "mlflow", response={"text/plain": {"type": "string"}}
    ),
    "mlflow.invocations": Operation(
        "MLflow scoring: dataframe_split, dataframe_records, instances, inputs, or CSV",
        "mlflow",
        request={
            mlflow.JSON: mlflow.InvocationRequest,
            mlflow.CSV: {"type": "string", "description": "A header line of feature names, then rows."},
        },
        response={"application/json": mlflow.InvocationAnswer},
        errors=(404, 413, 415, 500, 503),
        parameters=(
            Parameter(
                MODEL_HEADER,
                "The model to score with when several are served (default: the default model).",
                location="header",
                lists_models=True,
            ),
            Parameter(VERSION_HEADER, "The model version (default: the latest).", location="header"),
        ),
        description=(
            "A drop-in for `mlflow models serve`. With several models, name one with the "
            f"{MODEL_HEADER} header (and optionally {VERSION_HEADER})."
        ),
    ),
}
