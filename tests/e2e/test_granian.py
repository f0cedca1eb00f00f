"""`--server granian`: the same app, models loaded before the fork, served by granian's workers."""

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


def test_granian_refuses_tls_with_a_clear_message(start_server: Callable[..., RunningServer]) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "flaskserve", "serve", "--server", "granian", "--tls-self-signed", "x.skops"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "TLS" in result.stderr
    assert "Traceback" not in result.stderr
