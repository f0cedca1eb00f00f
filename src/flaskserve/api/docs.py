"""The API's contract and its interactive page: ``/openapi.json`` and ``/docs``.

The document is built per request from ``app.url_map``, so it lists exactly
the routes the app serves, each described by the operation it declared beside
its path (:mod:`flaskserve.web.routing`); a route declared without one still
appears, with a generic answer. ``/docs`` is a small page of our own
(``flaskserve/ui``) that reads the document and lets a user send requests; its
script and styles are served by the app, so it works offline and under a
``default-src 'self'`` content security policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, send_from_directory

import flaskserve
from flaskserve.access import OPEN, READ
from flaskserve.protocols import openapi
from flaskserve.protocols.openapi import Operation, Route
from flaskserve.runtime import get_runtime
from flaskserve.web.bodies import json_response
from flaskserve.web.routing import declared_operation

_UI = Path(str(resources.files("flaskserve.ui")))

blueprint = Blueprint("docs", __name__)

_IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})

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


def app_routes(app: Flask) -> Iterator[Route]:
    """Every (path, method) the app serves, as the document lists it."""
    for rule in app.url_map.iter_rules():
        path, _ = openapi.openapi_path(rule.rule)
        view = app.view_functions.get(rule.endpoint)
        doc = ((view.__doc__ or "").strip().splitlines() or [""])[0] if view else ""
        for method in sorted((rule.methods or set()) - _IGNORED_METHODS):
            yield Route(path, method, rule.endpoint, declared_operation(rule), doc)


def build_document(app: Flask) -> dict[str, object]:
    registry = get_runtime(app).registry
    versions = sorted({entry.version for entry in registry.entries()})
    return openapi.build_document(
        app_routes(app),
        title="flaskserve",
        version=flaskserve.__version__,
        description=_DESCRIPTION,
        model_names=registry.names(),
        model_versions=versions,
    )


@blueprint.get(
    "/openapi.json",
    access=READ,
    operation=Operation(
        "This document (OpenAPI 3.1)", "docs", response={"application/json": {"type": "object"}}
    ),
)
def openapi_document() -> Response:
    return json_response(build_document(current_app))


# The page and its files are a shell with no data in it: open, so a browser can load it and the
# user can type a key into it. The document it reads (/openapi.json) and every call it makes
# still need keys.
@blueprint.get(
    "/docs",
    access=OPEN,
    operation=Operation("Interactive API page", "docs", response={"text/html": {"type": "string"}}),
)
def page() -> Response:
    html = (_UI / "templates" / "docs.html").read_bytes()
    return Response(html, mimetype="text/html")


@blueprint.get(
    "/docs/static/<path:filename>",
    access=OPEN,
    operation=Operation(
        "Script and styles of the API page", "docs", response={"*/*": {"type": "string"}}, errors=(404,)
    ),
)
def static(filename: str) -> Response:
    return send_from_directory(_UI / "static", filename)
