"""The server's own catalogue: what it offers, the models and their versions.

Predictions with the simple protocol (``POST /predict``…) are declared by
:mod:`flaskserve.protocols.simple` and answered by the prediction edge.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app

import flaskserve
from flaskserve.access import READ
from flaskserve.protocols.openapi import Operation
from flaskserve.runtime import Runtime, get_runtime
from flaskserve.web.bodies import json_response

blueprint = Blueprint("simple", __name__)

_ANY_JSON = {"application/json": {"type": "object"}}


@blueprint.get("/", access=READ, operation=Operation("What this server offers", "simple", response=_ANY_JSON))
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
                "playground": "/ui",
                "metrics": "/metrics",
                "v2": "/v2",
            },
        }
    )


@blueprint.get(
    "/models",
    access=READ,
    operation=Operation("Served models, their versions and signatures", "simple", response=_ANY_JSON),
)
def list_models() -> Response:
    runtime = get_runtime(current_app)
    return json_response({"models": [_describe(runtime, name) for name in runtime.registry.names()]})


@blueprint.get(
    "/models/<name>",
    access=READ,
    operation=Operation("One model and its versions", "simple", response=_ANY_JSON, errors=(404,)),
)
def show_model(name: str) -> Response:
    runtime = get_runtime(current_app)
    runtime.registry.entry(name)
    return json_response(_describe(runtime, name))


@blueprint.get(
    "/models/<name>/versions/<version>",
    access=READ,
    operation=Operation("One model version", "simple", response=_ANY_JSON, errors=(404, 503)),
)
def show_version(name: str, version: str) -> Response:
    model = get_runtime(current_app).registry.resolve(name, version)
    return json_response(_describe_version(model.name, model.version, model), model=model)


def _describe(runtime: Runtime, name: str) -> dict[str, Any]:
    entries = runtime.registry.entries(name)
    latest = runtime.registry.entry(name)
    return {
        "name": name,
        "default_version": latest.version,
        # Whether POST /models/{name}/explain answers for the default version.
        "explainable": latest.model is not None and latest.model.explainable,
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
                "explainable": model.explainable,
            }
        )
    return described
