"""``GET /metrics``: the app's metrics in the Prometheus text format.

Under ``flaskserve serve`` the numbers are summed over every worker, so it does
not matter which worker answers the scrape. The route needs the ``metrics``
scope once API keys are configured (see :mod:`flaskserve.security.scopes`).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from flaskserve.observability.metrics import CONTENT_TYPE, Metrics, ModelStateCollector
from flaskserve.runtime import get_runtime

__all__ = ["METRICS_PART", "blueprint"]

#: The key of the app's :class:`~flaskserve.observability.metrics.Metrics` in ``Runtime.parts``.
METRICS_PART = "metrics"

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
def metrics() -> Response:
    runtime = get_runtime(current_app)
    collected: Metrics = runtime.parts[METRICS_PART]
    body = collected.exposition(ModelStateCollector(runtime.registry))
    return Response(body, content_type=CONTENT_TYPE)
