"""Routes of the simple JSON protocol and the model listings."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request

import flaskserve
from flaskserve.api.requests import json_response, read_json
from flaskserve.observability.context import note
from flaskserve.protocols import simple
from flaskserve.runtime import Runtime, get_runtime

blueprint = Blueprint("simple", __name__)


@blueprint.get("/")
def index() -> Response:
    runtime = get_runtime(current_app)
    return json_response(
        {
            "name": "flaskserve",
            "version": flaskserve.__version__,
            "default_model": runtime.registry.default_name,
            "models": runtime.registry.names(),
            "links": {
                "predict": "/predict",
                "models": "/models",
                "health": "/v2/health/ready",
                "openapi": "/openapi.json",
                "docs": "/docs",
                "metrics": "/metrics",
                "v2": "/v2",
            },
        }
    )


@blueprint.get("/models")
def list_models() -> Response:
    runtime = get_runtime(current_app)
    return json_response({"models": [_describe(runtime, name) for name in runtime.registry.names()]})


@blueprint.get("/models/<name>")
def show_model(name: str) -> Response:
    runtime = get_runtime(current_app)
    runtime.registry.entry(name)
    return json_response(_describe(runtime, name))


@blueprint.get("/models/<name>/versions/<version>")
def show_version(name: str, version: str) -> Response:
    model = get_runtime(current_app).registry.resolve(name, version)
    return json_response(_describe_version(model.name, model.version, model), model=model)


@blueprint.post("/predict")
def predict_default() -> Response:
    return _predict(None, None)


@blueprint.post("/models/<name>/predict")
def predict_latest(name: str) -> Response:
    return _predict(name, None)


@blueprint.post("/models/<name>/versions/<version>/predict")
def predict_version(name: str, version: str) -> Response:
    return _predict(name, version)


def _predict(name: str | None, version: str | None) -> Response:
    runtime = get_runtime(current_app)
    model = runtime.registry.resolve(name, version)
    note(model=model.name, version=model.version, protocol="simple")
    payload = read_json(runtime.settings.limits.max_json_depth)
    decoded = simple.decode_request(
        payload,
        model.signature,
        default_method=model.default_method,
        query_method=request.args.get("method"),
    )
    note(method=decoded.method, rows=int(decoded.matrix.shape[0]))
    prediction = runtime.service.predict(model, decoded.method, decoded.matrix)
    note(cache_hit=prediction.cache_hit, batch_rows=prediction.batch_rows)
    response = json_response(simple.encode_response(prediction.values, decoded, model.signature), model=model)
    return response


def _describe(runtime: Runtime, name: str) -> dict[str, Any]:
    entries = runtime.registry.entries(name)
    latest = runtime.registry.entry(name)
    return {
        "name": name,
        "default_version": latest.version,
        "versions": [_describe_version(e.name, e.version, e.model, e.state.value, e.reason) for e in entries],
    }


def _describe_version(
    name: str, version: str, model: Any, state: str = "READY", reason: str = ""
) -> dict[str, Any]:
    described: dict[str, Any] = {"name": name, "version": version, "state": state}
    if reason:
        described["reason"] = reason
    if model is not None:
        described.update(
            {
                "platform": model.platform,
                "sha256": model.sha256,
                "default_method": model.default_method,
                "signature": model.signature.describe(),
            }
        )
    return described
