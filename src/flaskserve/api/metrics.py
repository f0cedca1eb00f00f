"""``GET /metrics``: the app's metrics in the Prometheus text format.

Under ``flaskserve serve`` the numbers are summed over every worker, so it does
not matter which worker answers the scrape. The route needs the ``metrics``
scope once API keys are configured.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from flaskserve.access import METRICS
from flaskserve.observability.metrics import CONTENT_TYPE, ModelStateCollector
from flaskserve.observability.monitoring import get_monitoring
from flaskserve.protocols.openapi import Operation
from flaskserve.runtime import get_runtime

__all__ = ["blueprint"]

blueprint = Blueprint("metrics", __name__)


@blueprint.get(
    "/metrics",
    access=METRICS,
    operation=Operation(
        "Metrics in the Prometheus text format, summed over workers",
        "metrics",
        response={"text/plain": {"type": "string"}},
    ),
)
def metrics() -> Response:
    runtime = get_runtime(current_app)
    drift = get_monitoring(current_app).drift.collector()
    body = runtime.metrics.exposition(ModelStateCollector(runtime.registry), drift)
    return Response(body, content_type=CONTENT_TYPE)
