"""The playground: ``/ui``, a page to try every served model, and the two small reads it needs.

The page is a shell with no data in it (open, like ``/docs``): its script reads
the model list from ``GET /models``, predicts through the simple protocol and
explains through ``/explain``, so it needs exactly the keys those routes need.
Two reads exist for the page alone:

* ``GET /ui/api/models/<name>[/versions/<v>]/form`` (scope ``read``): the input
  form built from the signature, settings and training statistics
  (:mod:`flaskserve.models.form`);
* ``GET /ui/api/figures`` (scope ``metrics``): live figures per model, from the
  metrics summed over workers (:mod:`flaskserve.observability.figures`).

Its scripts are plain JavaScript modules and its charts SVG, all served from
here, so it works offline under the ``default-src 'self'`` policy.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from flask import Blueprint, Response, current_app, send_from_directory

from flaskserve.access import METRICS, OPEN, READ
from flaskserve.models.form import input_form
from flaskserve.observability.figures import model_figures
from flaskserve.protocols.openapi import Operation
from flaskserve.runtime import get_runtime
from flaskserve.web.bodies import json_response

__all__ = ["blueprint"]

_UI = Path(str(resources.files("flaskserve.ui")))
_HTML = {"text/html": {"type": "string"}}
_ANY_JSON = {"application/json": {"type": "object"}}

blueprint = Blueprint("playground", __name__)


def _page() -> Response:
    return Response((_UI / "templates" / "playground.html").read_bytes(), mimetype="text/html")


@blueprint.get(
    "/ui", access=OPEN, operation=Operation("The playground: every model at a glance", "ui", response=_HTML)
)
def overview() -> Response:
    return _page()


# The page shells name their model ``shown`` rather than ``name``: they are open and answer the same
# whatever the name (the page's script asks the keyed routes whether it exists), so the document must
# not list the served models as their only values.


@blueprint.get(
    "/ui/models/<shown>",
    access=OPEN,
    operation=Operation("The playground of one model", "ui", response=_HTML),
)
def model_page(shown: str) -> Response:
    return _page()


@blueprint.get(
    "/ui/models/<shown>/versions/<shown_version>",
    access=OPEN,
    operation=Operation("The playground of one model version", "ui", response=_HTML),
)
def version_page(shown: str, shown_version: str) -> Response:
    return _page()


@blueprint.get(
    "/ui/static/<path:filename>",
    access=OPEN,
    operation=Operation(
        "Scripts and styles of the playground", "ui", response={"*/*": {"type": "string"}}, errors=(404,)
    ),
)
def static(filename: str) -> Response:
    return send_from_directory(_UI / "static", filename)


@blueprint.get(
    "/ui/api/models/<name>/form",
    access=READ,
    operation=Operation(
        "The input form of a model's default version", "ui", response=_ANY_JSON, errors=(404, 503)
    ),
)
def default_form(name: str) -> Response:
    return _form(name, None)


@blueprint.get(
    "/ui/api/models/<name>/versions/<version>/form",
    access=READ,
    operation=Operation("The input form of one model version", "ui", response=_ANY_JSON, errors=(404, 503)),
)
def version_form(name: str, version: str) -> Response:
    return _form(name, version)


def _form(name: str, version: str | None) -> Response:
    model = get_runtime(current_app).registry.resolve(name, version)
    return json_response({"name": model.name, "version": model.version, **input_form(model).describe()})


@blueprint.get(
    "/ui/api/figures",
    access=METRICS,
    operation=Operation(
        "Live figures per model for the playground, summed over workers", "ui", response=_ANY_JSON
    ),
)
def figures() -> Response:
    runtime = get_runtime(current_app)
    by_model = model_figures(runtime.metrics.families(), runtime.registry.names())
    return json_response({"models": {name: f.describe() for name, f in by_model.items()}})
