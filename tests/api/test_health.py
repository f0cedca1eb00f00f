"""Liveness and readiness: ready only when every configured model version is loaded."""

from __future__ import annotations

import pytest
from flask import Flask

from flaskserve.models.registry import ModelEntry, ModelState
from flaskserve.runtime import get_runtime


@pytest.mark.parametrize("path", ["/v2/health/live", "/livez"])
def test_live_while_serving(app: Flask, path: str) -> None:
    response = app.test_client().get(path)
    assert response.status_code == 200
    assert response.get_json() == {"live": True}


@pytest.mark.parametrize("path", ["/v2/health/ready", "/readyz"])
def test_ready_when_every_model_is_loaded(app: Flask, path: str) -> None:
    response = app.test_client().get(path)
    assert response.status_code == 200
    assert response.get_json() == {"ready": True}


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(ModelState.LOADING, id="loading"),
        pytest.param(ModelState.UNAVAILABLE, id="failed to load"),
        pytest.param(ModelState.UNLOADING, id="unloading"),
    ],
)
@pytest.mark.parametrize("path", ["/v2/health/ready", "/readyz"])
def test_not_ready_while_one_model_version_is_not_loaded(app: Flask, path: str, state: ModelState) -> None:
    get_runtime(app).registry.set_entry(ModelEntry("iris", "3", state, reason="file is corrupt"))
    client = app.test_client()
    response = client.get(path)
    assert response.status_code == 503
    assert response.get_json() == {"ready": False}
    # Liveness is not readiness: the process still serves.
    assert client.get("/v2/health/live").status_code == 200


def test_a_model_that_is_not_loaded_refuses_predictions_as_readiness_says(app: Flask) -> None:
    get_runtime(app).registry.set_entry(
        ModelEntry("diabetes", "1", ModelState.UNAVAILABLE, reason="file is corrupt")
    )
    client = app.test_client()
    assert client.get("/v2/models/diabetes/ready").status_code == 503
    assert client.post("/models/diabetes/predict", json={f"x{i}": 0.0 for i in range(10)}).status_code == 503
    assert client.get("/v2/models/linear/ready").status_code == 200
    assert client.post("/models/linear/predict", json={"x": 1.0, "y": 2.0}).status_code == 200
