"""`flaskserve serve` as a user runs it: gunicorn, two workers, real HTTP."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from flaskserve import testing
from live_server import RunningServer, free_port

pytestmark = pytest.mark.e2e


def test_predictions_over_http_equal_model_predict(
    shared_server: RunningServer, diabetes_regressor: Any, iris_classifier: Any
) -> None:
    rows = testing.diabetes_rows(8)
    frame, _ = testing.iris_frame()

    regression = shared_server.post("/models/diabetes/predict", json={"instances": rows.tolist()})
    labels = shared_server.post(
        "/models/iris/versions/1/predict", json={"instances": frame.head(8).to_dict(orient="records")}
    )
    tutorial = shared_server.post("/predict", json={"x": 1, "y": 2})

    assert regression.status_code == labels.status_code == tutorial.status_code == 200
    np.testing.assert_allclose(regression.json()["predictions"], diabetes_regressor.predict(rows))
    assert labels.json()["predictions"] == iris_classifier.predict(frame.head(8)).tolist()
    assert tutorial.json()["prediction"] == pytest.approx(7.0, abs=0.01)


def test_errors_are_json_over_http_and_the_server_keeps_serving(shared_server: RunningServer) -> None:
    broken = shared_server.post("/predict", data=b"{oops", headers={"Content-Type": "application/json"})
    missing = shared_server.post("/predict", json={"x": 1})
    exploded = shared_server.post("/models/exploding/predict", json={"instances": [[-1, 1]]})
    after = shared_server.post("/predict", json={"x": 1, "y": 2})

    assert (broken.status_code, broken.json()["code"]) == (400, "malformed_request")
    assert (missing.status_code, missing.json()["code"]) == (400, "missing_feature")
    assert (exploded.status_code, exploded.json()["code"]) == (500, "prediction_failed")
    assert "Traceback" not in exploded.text
    assert after.status_code == 200


def test_readiness_flips_to_ready_once_models_are_loaded(repository: Path, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flaskserve",
            "serve",
            str(repository),
            "--port",
            str(port),
            "--workers",
            "2",
            "--allow-pickle",
            "--default-model",
            "linear",
            "--log-format",
            "json",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        seen: list[int | None] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                seen.append(requests.get(url + "/v2/health/ready", timeout=2).status_code)
            except requests.ConnectionError:
                seen.append(None)  # not listening yet: models load before the socket opens
            if seen[-1] == 200:
                break
            time.sleep(0.05)

        assert seen[-1] == 200
        assert set(seen) <= {None, 200}
        assert requests.get(url + "/v2/health/live", timeout=2).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_serve_refuses_an_untrusted_pickle_and_exits(tmp_path: Path, linear_xy: Any) -> None:
    path = testing.save_model(linear_xy, tmp_path / "model.joblib")

    result = subprocess.run(
        [sys.executable, "-m", "flaskserve", "serve", str(path), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "--allow-pickle" in result.stderr
    assert "Traceback" not in result.stderr
