"""The MLflow scoring server's probes and version, so ``mlflow models serve`` clients work unchanged.

Scoring (``POST /invocations``) is declared by :mod:`flaskserve.protocols.mlflow`
and answered by the prediction edge.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app

import flaskserve
from flaskserve.access import OPEN, READ
from flaskserve.api.health import READY_BODY
from flaskserve.protocols.openapi import Operation
from flaskserve.runtime import get_runtime
from flaskserve.web.bodies import json_response

blueprint = Blueprint("mlflow", __name__)

_PING = Operation(
    "MLflow health check (200 once the models are loaded)",
    "mlflow",
    response=READY_BODY,
    success_statuses=(200, 503),
)


# Load balancers probe these without credentials.
@blueprint.get("/ping", access=OPEN, operation=_PING)
@blueprint.get("/health", access=OPEN, operation=_PING)
def ping() -> Response:
    """200 once every model is loaded, as MLflow's load balancer probes expect."""
    ready = get_runtime(current_app).is_ready()
    return json_response({"ready": ready}, status=200 if ready else 503)


@blueprint.get(
    "/version",
    access=READ,
    operation=Operation("Server version, as text", "mlflow", response={"text/plain": {"type": "string"}}),
)
def version() -> Response:
    return Response(flaskserve.__version__, mimetype="text/plain")
