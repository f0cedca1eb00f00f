"""Liveness and readiness, as the Open Inference Protocol and Kubernetes probe them.

Open: orchestrators call them without credentials.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from flaskserve.access import OPEN
from flaskserve.protocols.openapi import Operation
from flaskserve.runtime import get_runtime
from flaskserve.web.bodies import json_response

blueprint = Blueprint("health", __name__)

_LIVE = Operation(
    "Liveness: 200 while the process serves",
    "health",
    response={"application/json": {"type": "object", "properties": {"live": {"type": "boolean"}}}},
)
#: The body of every readiness answer, 200 or 503: ``{"ready": true|false}``.
READY_BODY = {"application/json": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}
_READY = Operation(
    "Readiness: 200 when every model that should serve does, else 503",
    "health",
    response=READY_BODY,
    success_statuses=(200, 503),
)


@blueprint.get("/v2/health/live", access=OPEN, operation=_LIVE)
@blueprint.get("/livez", access=OPEN, operation=_LIVE)
def live() -> Response:
    return json_response({"live": True})


@blueprint.get("/v2/health/ready", access=OPEN, operation=_READY)
@blueprint.get("/readyz", access=OPEN, operation=_READY)
def ready() -> Response:
    ready = get_runtime(current_app).is_ready()
    return json_response({"ready": ready}, status=200 if ready else 503)
