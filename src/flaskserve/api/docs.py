"""The API's contract and its interactive page: ``/openapi.json`` and ``/docs``.

The document is built per request from ``app.url_map``, so it lists exactly
the routes the app serves, including ones other parts add; routes are described
by the ``OPERATIONS`` tables of the protocol blueprints. ``/docs`` is a small
page of our own (``flaskserve/ui``) that reads the document and lets a user send
requests; its script and styles are served by the app, so it works offline and
under a ``default-src 'self'`` content security policy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app

import flaskserve
from flaskserve.api import mlflow, repository, v1, v2
from flaskserve.api.requests import json_response
from flaskserve.protocols import openapi
from flaskserve.protocols.openapi import Operation, Parameter, Route
from flaskserve.runtime import get_runtime

_UI = Path(str(resources.files("flaskserve.ui")))

blueprint = Blueprint(
    "docs",
    __name__,
    static_folder=str(_UI / "static"),
    static_url_path="/docs/static",
)

_IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})
_ANY_JSON = {"type": "object"}
_ROWS = {
    "oneOf": [{"type": "object"}, {"type": "array"}],
    "description": 'One row by name {"x": 1, "y": 2}, or {"instances": [...]}, or a list of rows.',
}
_SIMPLE_PREDICT = Operation(
    "Predict with the simple JSON protocol",
    "simple",
    request={"application/json": _ROWS},
    response={"application/json": _ANY_JSON},
    errors=(404, 413, 415, 500, 503),
    parameters=(Parameter("method", "The model method, e.g. predict_proba."),),
)
_READY = Operation(
    "Readiness: 200 when every model is loaded, else 503",
    "health",
    response={"application/json": {"type": "object", "properties": {"ready": {"type": "boolean"}}}},
    success_statuses=(200, 503),
)

#: Routes of the simple protocol, health and docs blueprints.
OPERATIONS: dict[str, Operation] = {
    "simple.index": Operation("What this server offers", "simple", response={"application/json": _ANY_JSON}),
    "simple.list_models": Operation(
        "Served models, their versions and signatures", "simple", response={"application/json": _ANY_JSON}
    ),
    "simple.show_model": Operation(
        "One model and its versions", "simple", response={"application/json": _ANY_JSON}, errors=(404,)
    ),
    "simple.show_version": Operation(
        "One model version", "simple", response={"application/json": _ANY_JSON}, errors=(404, 503)
    ),
    "simple.predict_default": _SIMPLE_PREDICT,
    "simple.predict_latest": _SIMPLE_PREDICT,
    "simple.predict_version": _SIMPLE_PREDICT,
    "health.live": Operation(
        "Liveness: 200 while the process serves",
        "health",
        response={"application/json": {"type": "object", "properties": {"live": {"type": "boolean"}}}},
    ),
    "health.ready": _READY,
    "docs.openapi_document": Operation(
        "This document (OpenAPI 3.1)", "docs", response={"application/json": _ANY_JSON}
    ),
    "docs.page": Operation("Interactive API page", "docs", response={"text/html": {"type": "string"}}),
    "docs.static": Operation(
        "Script and styles of the API page", "docs", response={"*/*": {"type": "string"}}, errors=(404,)
    ),
}

_DESCRIPTION = """\
One server, several protocols, the same validation and answers:

* **simple** — `POST /predict`, `POST /models/{name}[/versions/{version}]/predict`.
* **v2** — the Open Inference Protocol (KServe V2 / Triton), with the binary tensor data and
  classification extensions. Outputs are named after model methods.
* **v1** — KServe V1 / TensorFlow Serving `:predict`.
* **mlflow** — `POST /invocations` as `mlflow models serve` answers it; with several models,
  name one with the `X-Model-Name` header.

Errors are `{"error": message, "code": code}` with a 4xx status for anything the client can fix.
"""


def all_operations() -> Mapping[str, Operation]:
    return {**OPERATIONS, **v2.OPERATIONS, **repository.OPERATIONS, **v1.OPERATIONS, **mlflow.OPERATIONS}


def app_routes(app: Flask, operations: Mapping[str, Operation]) -> Iterator[Route]:
    """Every (path, method) the app serves, as the document lists it."""
    for rule in app.url_map.iter_rules():
        path, _ = openapi.openapi_path(rule.rule)
        view = app.view_functions.get(rule.endpoint)
        doc = ((view.__doc__ or "").strip().splitlines() or [""])[0] if view else ""
        for method in sorted((rule.methods or set()) - _IGNORED_METHODS):
            yield Route(path, method, rule.endpoint, operations.get(rule.endpoint), doc)


def build_document(app: Flask) -> dict[str, object]:
    registry = get_runtime(app).registry
    versions = sorted({entry.version for entry in registry.entries()})
    return openapi.build_document(
        app_routes(app, all_operations()),
        title="flaskserve",
        version=flaskserve.__version__,
        description=_DESCRIPTION,
        model_names=registry.names(),
        model_versions=versions,
    )


@blueprint.get("/openapi.json")
def openapi_document() -> Response:
    return json_response(build_document(current_app))


@blueprint.get("/docs")
def page() -> Response:
    html = (_UI / "templates" / "docs.html").read_bytes()
    return Response(html, mimetype="text/html")
