"""A model whose predict hangs: its request fails with 504 in time, and the worker is replaced.

The model ``hang`` is a Python class that returns ``2x``, except for a negative
``x``, where it sleeps ``-x`` seconds first: ``x = -3600`` hangs for an hour.
With ``predict_timeout_s`` on, such a request is answered 504
``prediction_timeout`` once its time is up, while the other requests are
answered as usual; once ``max_stuck_predictions`` calls hang in one worker, the
worker stops gracefully and its master starts another.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from flaskserve import testing
from flaskserve.app import create_app
from flaskserve.errors import PredictionTimeout
from flaskserve.inference.service import InferenceService, TimedCalls
from flaskserve.runtime import get_runtime
from flaskserve.settings import ModelSettings, Settings, load_settings
from live_server import RunningServer, children, wait_until_gone

HANGING_MODEL = """
import threading
import time

import numpy as np


class Model:
    feature_names_in_ = ["x"]

    def predict(self, features):
        seconds = -float(np.min(features[:, 0]))
        if seconds > 0:
            time.sleep(seconds)
        return 2 * features[:, 0]
"""

#: The timeout the tests set, and how much later than it a 504 may come (a loaded CI machine).
TIMEOUT_S = 0.5
SLACK_S = 1.5
#: How long a hung call lasts in the in-process tests (its thread is a daemon that finishes then).
BRIEF_HANG_S = 4.0
#: A hang that outlives the test: only the worker's exit ends it.
ENDLESS_HANG_S = 3600.0


@pytest.fixture(scope="module")
def hanging_repository(tmp_path_factory: pytest.TempPathFactory, linear_xy: Any) -> Path:
    """``linear``, and ``hang`` with its own ``predict_timeout_s`` in its ``model-settings.toml``."""
    root = testing.write_repository(
        tmp_path_factory.mktemp("hanging-repository"), {"linear": {"1": (linear_xy, ".skops")}}
    )
    folder = root / "hang" / "1"
    folder.mkdir(parents=True)
    (folder / "model.py").write_text(HANGING_MODEL, encoding="utf-8")
    (root / "hang" / "model-settings.toml").write_text(f"predict_timeout_s = {TIMEOUT_S}\n", encoding="utf-8")
    return root


@pytest.fixture
def hanging_settings(hanging_repository: Path) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"model_path": hanging_repository, "allow_code": True, "allow_pickle": True}
        values.update(overrides)
        return load_settings(None, **values)

    return build


def timed_post(post: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    response = post()
    return response, time.monotonic() - started


def prediction_outcome(url: str) -> int | str:
    """The status of one ordinary prediction on a connection of its own, or the error it ended with."""
    try:
        return requests.post(url + "/predict", json={"x": 1, "y": 2}, timeout=10).status_code
    except requests.RequestException as error:
        return type(error).__name__


def test_a_hanging_prediction_is_answered_504_in_time_and_others_are_not_held(
    hanging_settings: Callable[..., Settings],
) -> None:
    client = create_app(hanging_settings()).test_client()

    with ThreadPoolExecutor(max_workers=1) as pool:
        hung = pool.submit(timed_post, lambda: client.post("/models/hang/predict", json={"x": -BRIEF_HANG_S}))
        ordinary = client.post("/models/hang/predict", json={"x": 3})
        response, waited = hung.result(timeout=BRIEF_HANG_S + 10)

    assert ordinary.status_code == 200
    assert ordinary.get_json()["prediction"] == 6.0
    assert response.status_code == 504
    body = response.get_json()
    assert body["code"] == "prediction_timeout"
    assert body["error"].startswith(f"model 'hang' did not answer within {TIMEOUT_S:g} s (error id ")
    assert TIMEOUT_S <= waited < TIMEOUT_S + SLACK_S


def test_the_timeout_is_off_by_default_and_a_model_may_turn_it_on(
    hanging_settings: Callable[..., Settings],
) -> None:
    settings = hanging_settings(models={"linear": ModelSettings(predict_timeout_s=2.0)})
    runtime = get_runtime(create_app(settings))

    assert settings.predict_timeout_s == 0
    assert runtime.service.timeout_s(runtime.registry.resolve("linear")) == 2.0
    assert runtime.service.timeout_s(runtime.registry.resolve("hang")) == TIMEOUT_S


def test_past_the_bound_of_stuck_calls_the_process_asks_to_be_retired_once(
    hanging_settings: Callable[..., Settings],
) -> None:
    model = get_runtime(create_app(hanging_settings())).registry.resolve("hang")
    retired: list[int] = []
    service = InferenceService(
        max_rows=100,
        predict_timeout_s=0.2,
        max_stuck=2,
        retire=lambda: retired.append(1),
        retire_after_s=0,
    )
    hang = np.array([[-BRIEF_HANG_S]])

    outcomes = []
    for _ in range(3):
        with pytest.raises(PredictionTimeout) as caught:
            service.predict(model, "predict", hang)
        outcomes.append((service.timed_calls.stuck, len(retired)))
    answer = service.predict(model, "predict", np.array([[1.5]]))

    assert caught.value.status == 504
    assert outcomes == [(1, 0), (2, 1), (3, 1)]
    assert answer.values.tolist() == [3.0]


def test_a_batch_that_hangs_fails_in_time_and_the_next_batch_is_answered(
    hanging_settings: Callable[..., Settings],
) -> None:
    runtime = get_runtime(create_app(hanging_settings(max_batch_size=8, max_batch_delay_ms=20.0)))
    model = runtime.registry.resolve("hang")

    def predict(x: float) -> Any:
        try:
            return runtime.service.predict(model, "predict", np.array([[x]])).values.tolist()
        except PredictionTimeout as error:
            return error.code

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(predict, [-BRIEF_HANG_S, 1.0, 2.0, 3.0], timeout=BRIEF_HANG_S + 10))
    waited = time.monotonic() - started
    after = predict(4.0)

    assert answers[0] == "prediction_timeout"
    for x, answer in zip([1.0, 2.0, 3.0], answers[1:], strict=True):
        assert answer in ([2 * x], "prediction_timeout")
    assert waited < 2 * TIMEOUT_S + SLACK_S, "a request waits at most two timeouts"
    assert after == [8.0]


@pytest.mark.e2e
@pytest.mark.parametrize("server_name", ["gunicorn", "granian"])
def test_a_worker_with_stuck_calls_is_replaced_and_the_server_keeps_answering(
    start_server: Callable[..., RunningServer], hanging_repository: Path, server_name: str
) -> None:
    server = start_server("--server", server_name, "--allow-code", model_path=hanging_repository, workers=2)
    first_workers = set(server.worker_pids(2))
    hung: list[tuple[int, str, float]] = []
    ordinary: list[int | str] = []

    # Two stuck calls retire a worker; three hung requests put two in one of the two workers.
    deadline = time.monotonic() + 20
    while set(children(server.process.pid)) >= first_workers and time.monotonic() < deadline:
        if len(hung) < 3:
            response, waited = timed_post(
                lambda: requests.post(
                    server.url + "/models/hang/predict", json={"x": -ENDLESS_HANG_S}, timeout=10
                )
            )
            hung.append((response.status_code, response.json()["code"], waited))
        ordinary.append(prediction_outcome(server.url))
        time.sleep(0.1)

    replaced = first_workers - set(children(server.process.pid))
    assert replaced, f"no worker was replaced after {len(hung)} hung requests:\n{server.logs()}"
    assert wait_until_gone(list(replaced), timeout=15) == {}
    server.worker_pids(2)
    assert all(status == 504 and code == "prediction_timeout" for status, code, _ in hung), hung
    assert max(waited for _, _, waited in hung) < TIMEOUT_S + SLACK_S
    assert set(ordinary) == {200}, ordinary
    assert server.get("/readyz").status_code == 200
    assert server.post("/models/hang/predict", json={"x": 2}).json()["prediction"] == 4.0


def test_a_process_that_has_just_started_is_retired_only_once_it_has_served_a_while() -> None:
    retired = threading.Event()
    release = threading.Event()
    calls = TimedCalls(max_stuck=1, retire=retired.set, retire_after_s=1.0)

    def hang(matrix: np.ndarray) -> np.ndarray:
        release.wait(10)
        return matrix

    started = time.monotonic()
    with pytest.raises(PredictionTimeout):
        calls.run(hang, np.zeros((1, 1)), 0.1, "hang")
    early = retired.is_set()
    retired.wait(5)
    waited = time.monotonic() - started
    release.set()

    assert not early
    assert retired.is_set()
    assert 1.0 <= waited < 3.0
