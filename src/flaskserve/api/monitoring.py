"""``GET /models/{name}/monitoring``: the drift of a model's served versions, as JSON.

The same figures as the ``flaskserve_feature_drift_*`` gauges of ``/metrics``,
computed from the window summed over every worker, with each PSI's band named
(stable, moderate, major). A version without a reference profile says so
(``"profiled": false``); ``flaskserve profile`` writes one.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from flaskserve.access import READ
from flaskserve.errors import ModelNotFound, clip
from flaskserve.observability.drift.statistics import MAJOR, MODERATE
from flaskserve.observability.drift.window import RowSlots, TimeSlots
from flaskserve.observability.monitoring import get_monitoring
from flaskserve.protocols.openapi import Operation
from flaskserve.runtime import get_runtime
from flaskserve.web.bodies import json_response

__all__ = ["blueprint"]

blueprint = Blueprint("monitoring", __name__)


@blueprint.get(
    "/models/<name>/monitoring",
    access=READ,
    operation=Operation(
        "Drift of each served version of a model against its training profile",
        "simple",
        response={"application/json": {"type": "object"}},
        errors=(404,),
        description=(
            "Per feature and output over the drift window: PSI with its band (stable under "
            f"{MODERATE}, moderate under {MAJOR}, else major), Kolmogorov-Smirnov, Jensen-Shannon, "
            "and the shares out of the training range and missing."
        ),
    ),
)
def monitoring(name: str) -> Response:
    runtime = get_runtime(current_app)
    if not runtime.registry.entries(name):
        raise ModelNotFound(
            f"model '{clip(name)}' is not served (served models: {', '.join(runtime.registry.names()[:20])})"
        )
    drift = get_monitoring(current_app).drift
    slots = drift.window.slots
    return json_response(
        {
            "model": name,
            # One of the two is set: the window is a span of time or each version's last rows.
            "window_s": slots.window_s if isinstance(slots, TimeSlots) else None,
            "window_last_rows": slots.window_rows if isinstance(slots, RowSlots) else None,
            "bands": {"moderate": MODERATE, "major": MAJOR},
            "versions": drift.report(name),
        }
    )
