"""Liveness and readiness, as the Open Inference Protocol and Kubernetes probe them."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from flaskserve.api.requests import json_response
from flaskserve.runtime import get_runtime

blueprint = Blueprint("health", __name__)


@blueprint.get("/v2/health/live")
@blueprint.get("/livez")
def live() -> Response:
    return json_response({"live": True})


@blueprint.get("/v2/health/ready")
@blueprint.get("/readyz")
def ready() -> Response:
    ready = get_runtime(current_app).registry.is_ready()
    return json_response({"ready": ready}, status=200 if ready else 503)
