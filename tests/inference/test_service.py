"""The composed hot path: cache and batching per model version and method, through the service and the API."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from flaskserve.app import create_app
from flaskserve.errors import PredictionFailed
from flaskserve.inference.service import InferenceService
from flaskserve.runtime import get_runtime
from flaskserve.settings import ModelSettings, Settings
from flaskserve.testing import ManualClock, iris_frame


class RecordingObserver:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, int]] = []
        self.batches: list[tuple[str, int, int]] = []
        self.lookups: list[tuple[str, str, bool]] = []

    def model_called(self, model: str, version: str, method: str, rows: int, seconds: float) -> None:
        self.calls.append((model, version, method, rows))

    def batch_formed(self, model: str, version: str, rows: int, requests: int, queue_wait_s: float) -> None:
        self.batches.append((model, rows, requests))

    def cache_lookup(self, model: str, version: str, hit: bool) -> None:
        self.lookups.append((model, version, hit))


@pytest.fixture
def observer() -> RecordingObserver:
    return RecordingObserver()


@pytest.fixture
def cached_app(make_settings: Callable[..., Settings], observer: RecordingObserver) -> Flask:
    return create_app(make_settings(cache_size=16), observer=observer)


@pytest.fixture
def cached_client(cached_app: Flask) -> FlaskClient:
    return cached_app.test_client()


def make_service(observer: RecordingObserver, **options: Any) -> InferenceService:
    return InferenceService(max_rows=1000, observer=observer, clock=ManualClock(), **options)


def test_a_repeated_request_is_a_cache_hit(cached_client: FlaskClient, observer: RecordingObserver) -> None:
    first = cached_client.post("/predict", json={"x": 1, "y": 2})
    second = cached_client.post("/predict", json={"x": 1, "y": 2})

    assert first.headers.get("X-Cache") in (None, "MISS")
    assert second.headers["X-Cache"] == "HIT"
    assert second.get_json() == first.get_json()
    assert [hit for _, _, hit in observer.lookups] == [False, True]
    assert len(observer.calls) == 1


def test_ids_headers_and_json_formatting_do_not_change_the_key(
    cached_client: FlaskClient, observer: RecordingObserver
) -> None:
    cached_client.post("/predict", json={"x": 1, "y": 2}, headers={"X-Request-ID": "first"})
    second = cached_client.post(
        "/predict",
        data=b'{ "y" : 2.0,\n  "x" : 1 }',
        content_type="application/json",
        headers={"X-Request-ID": "second", "User-Agent": "other"},
    )

    assert second.headers["X-Cache"] == "HIT"


def test_identical_rows_through_another_protocol_hit_the_same_entry(
    cached_client: FlaskClient, observer: RecordingObserver
) -> None:
    cached_client.post("/predict", json={"x": 1, "y": 2})
    by_column = [
        {"name": "x", "shape": [1], "datatype": "FP64", "data": [1]},
        {"name": "y", "shape": [1], "datatype": "FP64", "data": [2]},
    ]
    v2 = cached_client.post("/v2/models/linear/infer", json={"id": "abc", "inputs": by_column})

    assert v2.status_code == 200
    assert [hit for _, _, hit in observer.lookups] == [False, True]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("/models/linear/predict", "/models/exploding/predict", id="another model"),
        pytest.param(
            "/models/iris/versions/1/predict?method=predict_proba",
            "/models/iris/versions/2/predict?method=predict_proba",
            id="another version",
        ),
        pytest.param(
            "/models/iris/versions/1/predict?method=predict",
            "/models/iris/versions/1/predict?method=predict_proba",
            id="another method",
        ),
    ],
)
def test_the_cache_never_crosses_models_versions_or_methods(
    cached_client: FlaskClient, first: str, second: str
) -> None:
    row = {"instances": [[5.1, 3.5, 1.4, 0.2]]} if "iris" in first else {"instances": [[1.0, 2.0]]}
    answers = [cached_client.post(path, json=row) for path in (first, second)]

    assert [a.status_code for a in answers] == [200, 200]
    assert answers[1].headers.get("X-Cache") != "HIT"


def test_failures_are_never_cached(cached_client: FlaskClient, observer: RecordingObserver) -> None:
    for _ in range(2):
        response = cached_client.post("/models/exploding/predict", json={"instances": [[-1.0, 2.0]]})
        assert response.status_code == 500
        assert response.get_json()["code"] == "prediction_failed"

    assert len(observer.calls) == 2
    assert not any(hit for _, _, hit in observer.lookups)


def test_a_model_can_turn_the_cache_off(
    make_settings: Callable[..., Settings], observer: RecordingObserver
) -> None:
    app = create_app(
        make_settings(cache_size=16, models={"linear": ModelSettings(cache_size=0)}), observer=observer
    )
    client = app.test_client()

    answers = [client.post("/predict", json={"x": 1, "y": 2}) for _ in range(2)]

    assert all(a.headers.get("X-Cache") != "HIT" for a in answers)
    assert observer.lookups == []


def test_batched_requests_keep_their_own_method(
    make_settings: Callable[..., Settings], observer: RecordingObserver
) -> None:
    app = create_app(make_settings(max_batch_size=32, max_batch_delay_ms=1.0))
    runtime = get_runtime(app)
    model = runtime.registry.resolve("iris", "1")
    frame, _ = iris_frame()
    rows = frame.to_numpy()[:60]
    jobs = [("predict" if i % 2 else "predict_proba", rows[i : i + 3]) for i in range(0, 60, 3)]

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        answers = list(pool.map(lambda job: runtime.service.predict(model, *job).values, jobs, timeout=30))

    for (method, matrix), values in zip(jobs, answers, strict=True):
        unbatched = model.call(method, matrix)
        assert values.shape == unbatched.shape
        if method == "predict":
            assert values.tolist() == unbatched.tolist()
        else:
            np.testing.assert_allclose(values, unbatched, rtol=1e-12)


def test_a_poisoned_request_fails_alone_with_a_clear_error(
    make_settings: Callable[..., Settings], observer: RecordingObserver
) -> None:
    app = create_app(make_settings(max_batch_size=8, max_batch_delay_ms=50.0))
    runtime = get_runtime(app)
    model = runtime.registry.resolve("exploding", "1")
    matrices = [np.array([[float(i), 1.0]]) for i in range(6)] + [np.array([[-1.0, 1.0]])]

    def predict(matrix: np.ndarray) -> Any:
        try:
            return runtime.service.predict(model, "predict", matrix).values
        except PredictionFailed as error:
            return error

    with ThreadPoolExecutor(max_workers=len(matrices)) as pool:
        answers = list(pool.map(predict, matrices, timeout=30))

    *innocent, poisoned = answers
    assert isinstance(poisoned, PredictionFailed)
    assert "error id" in poisoned.message
    for i, values in enumerate(innocent):
        np.testing.assert_array_equal(values, [i + 1.0])


def test_the_service_answers_through_the_kernel_the_model_carries(
    make_settings: Callable[..., Settings], observer: RecordingObserver
) -> None:
    model = get_runtime(create_app(make_settings())).registry.resolve("linear")
    asked: list[str] = []

    def kernels(served: Any, method: str) -> Callable[[np.ndarray], np.ndarray]:
        asked.append(method)
        return lambda matrix: np.full(matrix.shape[0], 7.0)

    carrying = dataclasses.replace(model, kernels=kernels)
    service = make_service(observer)
    rows = np.array([[1.0, 2.0], [3.0, 4.0]])

    answers = [service.predict(carrying, "predict", rows).values for _ in range(2)]

    assert [values.tolist() for values in answers] == [[7.0, 7.0], [7.0, 7.0]]
    assert asked == ["predict"]
    assert [called for _, _, _, called in observer.calls] == [2, 2]


def test_server_settings_apply_unless_the_model_overrides_them(observer: RecordingObserver) -> None:
    service = make_service(observer, max_batch_size=16, max_batch_delay_ms=3.0, cache_size=5)

    class Model:
        settings = ModelSettings(max_batch_size=1, cache_size=0)

    class Plain:
        settings = ModelSettings()

    assert service.batch_settings(Model()) == (1, 3.0)  # type: ignore[arg-type]
    assert service.cache_entries(Model()) == 0  # type: ignore[arg-type]
    assert service.batch_settings(Plain()) == (16, 3.0)  # type: ignore[arg-type]
    assert service.cache_entries(Plain()) == 5  # type: ignore[arg-type]
