"""`--server granian`: the same app, models loaded before the fork, served by granian's workers.

(HTTPS and mutual TLS under granian are in tests/security/test_https_e2e.py.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from flaskserve import testing
from live_server import RunningServer

pytestmark = pytest.mark.e2e


def test_granian_serves_the_same_answers_with_metrics_and_request_ids(
    start_server: Callable[..., RunningServer], diabetes_regressor: Any
) -> None:
    server = start_server("--server", "granian")
    rows = testing.diabetes_rows(4)

    answers = [server.post("/models/diabetes/predict", json={"instances": rows.tolist()}) for _ in range(6)]
    bad = server.post("/predict", json={"x": 1})
    metrics = server.get("/metrics").text

    assert all(a.status_code == 200 for a in answers)
    np.testing.assert_allclose(answers[0].json()["predictions"], diabetes_regressor.predict(rows))
    assert answers[0].headers["X-Request-ID"]
    assert (bad.status_code, bad.json()["code"]) == (400, "missing_feature")
    counted = [
        line
        for line in metrics.splitlines()
        if line.startswith("flaskserve_requests_total{")
        and 'model="diabetes"' in line
        and 'status="200"' in line
    ]
    assert counted
    assert float(counted[0].rsplit(" ", 1)[1]) == 6.0
    assert server.stop() == 0
    records = server.log_records()  # fails if any line, granian's own included, is not JSON
    assert any(r["logger"].startswith("_granian") for r in records)
    assert any(r.get("request_id") == answers[0].headers["X-Request-ID"] for r in records)
