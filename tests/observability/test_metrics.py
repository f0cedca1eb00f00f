"""GET /metrics in-process: counts, bounded labels, and one registry per app."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from flaskserve.app import create_app
from flaskserve.errors import ModelLoadError, TooManyRequests, Unauthorized
from flaskserve.models.loaders import default_loaders
from flaskserve.models.loading import load_registry
from flaskserve.models.registry import ModelEntry, ModelState
from flaskserve.observability.metrics import Metrics
from flaskserve.runtime import get_runtime
from flaskserve.settings import Settings
from metrics_text import labels, samples

ROW = {"x": 1.0, "y": 2.0}


def scrape(client: FlaskClient) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def test_requests_are_counted_by_model_version_protocol_method_and_status(client: FlaskClient) -> None:
    for _ in range(7):
        assert client.post("/models/linear/predict", json=ROW).status_code == 200
    assert client.post("/models/iris/versions/1/predict?method=predict_proba", json={}).status_code == 400
    assert client.post("/models/exploding/predict", json={"x0": -1, "x1": 1}).status_code == 500

    text = scrape(client)
    counted = samples(text, "flaskserve_requests_total")
    assert (
        counted[labels(model="linear", version="1", protocol="simple", method="predict", status="200")] == 7
    )
    assert counted[labels(model="iris", version="1", protocol="simple", method="", status="400")] == 1
    assert (
        counted[labels(model="exploding", version="1", protocol="simple", method="predict", status="500")]
        == 1
    )
    latency = samples(text, "flaskserve_request_duration_seconds_count")
    assert latency[labels(model="linear", protocol="simple")] == 7
    inference = samples(text, "flaskserve_model_inference_seconds_count")
    assert inference[labels(model="linear", version="1", method="predict")] == 7


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param(
            "/models/nope/predict", labels(model="unknown", version="", method=""), id="unknown model"
        ),
        pytest.param(
            "/models/nope/versions/7/predict",
            labels(model="unknown", version="", method=""),
            id="unknown both",
        ),
        pytest.param(
            "/models/iris/versions/99/predict",
            labels(model="iris", version="unknown", method=""),
            id="bad version",
        ),
        pytest.param(
            "/models/linear/predict?method=bogus", labels(model="linear", version="1"), id="bad method"
        ),
    ],
)
def test_names_the_server_does_not_have_never_become_label_values(
    client: FlaskClient, path: str, expected: frozenset[tuple[str, str]]
) -> None:
    response = client.post(path, json=ROW)
    assert response.status_code in (400, 404)

    counted = samples(scrape(client), "flaskserve_requests_total")
    (key,) = [key for key in counted if ("status", str(response.status_code)) in key]
    assert expected <= key
    values = {value for _, value in key}
    assert values.isdisjoint({"nope", "7", "99", "bogus"})


def test_requests_in_flight_counts_only_the_scrape(client: FlaskClient) -> None:
    client.post("/predict", json=ROW)
    assert samples(scrape(client), "flaskserve_requests_in_flight")[labels()] == 1


def test_two_apps_count_separately(make_settings: Callable[..., Settings]) -> None:
    first, second = create_app(make_settings()), create_app(make_settings())
    first.test_client().post("/predict", json=ROW)
    first.test_client().post("/predict", json=ROW)
    second.test_client().post("/predict", json=ROW)
    ok = labels(model="linear", version="1", protocol="simple", method="predict", status="200")
    assert samples(scrape(first.test_client()), "flaskserve_requests_total")[ok] == 2
    assert samples(scrape(second.test_client()), "flaskserve_requests_total")[ok] == 1


def test_model_loads_are_counted_and_timed(client: FlaskClient) -> None:
    text = scrape(client)
    loads = samples(text, "flaskserve_model_loads_total")
    assert loads[labels(model="iris", version="1")] == 1
    assert loads[labels(model="iris", version="2")] == 1
    assert samples(text, "flaskserve_model_load_seconds_count")[labels(model="iris")] == 2
    assert samples(text, "flaskserve_models_loaded")[labels()] == 5


def test_a_failed_load_is_counted(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    broken = tmp_path / "broken" / "1" / "model.skops"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"this is not a skops file")
    metrics = Metrics()
    with pytest.raises(ModelLoadError):
        load_registry(make_settings(model_path=tmp_path, default_model=None), default_loaders(), metrics)
    failures = samples(metrics.exposition().decode(), "flaskserve_model_load_failures_total")
    assert failures == {labels(model="broken", version="1"): 1}


def test_model_state_follows_the_registry(app: Flask) -> None:
    get_runtime(app).registry.set_entry(ModelEntry("linear", "1", ModelState.LOADING))
    text = scrape(app.test_client())
    state = samples(text, "flaskserve_model_state")
    assert state[labels(model="linear", version="1", state="LOADING")] == 1
    assert state[labels(model="linear", version="1", state="READY")] == 0
    assert samples(text, "flaskserve_models_loaded")[labels()] == 4


def test_refusals_are_counted_by_kind(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings())

    # Stands in for the security extensions, which refuse before the view runs.
    @app.before_request
    def refuse() -> None:
        kind = request.headers.get("X-Refuse")
        if kind == "rate":
            raise TooManyRequests()
        if kind == "auth":
            raise Unauthorized()

    client = app.test_client()
    for kind in ("rate", "rate", "auth"):
        client.post("/models/linear/predict", json=ROW, headers={"X-Refuse": kind})
    text = scrape(client)
    assert samples(text, "flaskserve_rate_limited_total") == {labels(model="linear"): 2}
    assert samples(text, "flaskserve_auth_refused_total") == {labels(reason="unauthorized"): 1}


def test_batches_and_cache_lookups_are_observed() -> None:
    metrics = Metrics()
    metrics.batch_formed("iris", "2", rows=12, requests=3, queue_wait_s=0.0015)
    metrics.cache_lookup("iris", "2", hit=True)
    metrics.cache_lookup("iris", "2", hit=False)
    metrics.cache_lookup("iris", "2", hit=False)
    text = metrics.exposition().decode()
    key = labels(model="iris", version="2")
    assert samples(text, "flaskserve_batch_rows_sum")[key] == 12
    assert samples(text, "flaskserve_batch_requests_sum")[key] == 3
    assert samples(text, "flaskserve_batch_queue_wait_seconds_count")[key] == 1
    lookups = samples(text, "flaskserve_cache_lookups_total")
    assert lookups[labels(model="iris", version="2", result="hit")] == 1
    assert lookups[labels(model="iris", version="2", result="miss")] == 2


def test_a_v2_request_for_several_outputs_is_labelled_with_all_its_methods(client: FlaskClient) -> None:
    row = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    body = {
        "inputs": [
            {"name": name, "shape": [1], "datatype": "FP64", "data": [value]} for name, value in row.items()
        ],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    response = client.post("/v2/models/iris/versions/1/infer", json=body)
    assert response.status_code == 200, response.get_json()
    counted = samples(scrape(client), "flaskserve_requests_total")
    key = labels(model="iris", version="1", protocol="v2", method="predict,predict_proba", status="200")
    assert counted[key] == 1
