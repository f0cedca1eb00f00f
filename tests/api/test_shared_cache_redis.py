"""Two apps sharing a real Redis as the second cache tier, as two replicas do.

Each test starts its own ``redis-server`` on a free port. An answer computed by
one app is a hit in the other; versions never share an entry; an entry forged in
Redis is a miss, counted, and runs nothing; with Redis dead, every prediction is
still answered by the model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from flaskserve.app import create_app
from flaskserve.settings import Settings
from live_server import free_port
from metrics_text import labels, samples
from redis_server import NEEDS_REDIS, RedisServer

pytestmark = NEEDS_REDIS

IRIS_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
#: Generous for a busy machine: each wait is a few milliseconds, and a dead store is then left alone.
DEAD_STORE_BOUND_S = 2.0


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, "127.0.0.1", free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def replica(make_settings: Callable[..., Settings], redis_server: RedisServer) -> Callable[[], Flask]:
    def build() -> Flask:
        return create_app(make_settings(cache_size=100, cache_storage=redis_server.url))

    return build


def errors_counted(app: Flask) -> dict[str, float]:
    found = samples(app.test_client().get("/metrics").text, "flaskserve_cache_storage_errors_total")
    return {dict(key)["operation"]: value for key, value in found.items()}


def test_a_row_answered_by_one_replica_is_a_hit_on_another(replica: Callable[[], Flask]) -> None:
    first, second = replica().test_client(), replica().test_client()

    answered = first.post("/models/iris/predict", json=IRIS_ROW)
    again = second.post("/models/iris/predict", json=IRIS_ROW)

    assert (answered.status_code, answered.headers["X-Cache"]) == (200, "MISS")
    assert (again.status_code, again.headers["X-Cache"]) == (200, "HIT")
    assert again.json == answered.json


def test_two_versions_of_a_model_never_share_an_entry(replica: Callable[[], Flask]) -> None:
    first, second = replica().test_client(), replica().test_client()

    first.post("/models/iris/versions/1/predict", json=IRIS_ROW)
    other_version = second.post("/models/iris/versions/2/predict", json=IRIS_ROW)

    assert (other_version.status_code, other_version.headers["X-Cache"]) == (200, "MISS")


def test_a_forged_entry_is_a_counted_miss(replica: Callable[[], Flask], redis_server: RedisServer) -> None:
    replica().test_client().post("/models/iris/predict", json=IRIS_ROW)
    with redis_server.client() as store:
        keys = store.keys("flaskserve:cache:*")
        for key in keys:
            store.set(key, b"\x80\x04\x95cos\nsystem\n(S'touch /tmp/pwned'\ntR.")
    app = replica()

    answer = app.test_client().post("/models/iris/predict", json=IRIS_ROW)

    assert len(keys) == 1
    assert (answer.status_code, answer.headers["X-Cache"]) == (200, "MISS")
    assert errors_counted(app) == {"decode": 1.0}


def test_with_redis_dead_the_models_answer_within_a_bounded_wait(
    replica: Callable[[], Flask], redis_server: RedisServer
) -> None:
    app = replica()
    client = app.test_client()
    redis_server.stop()

    started = time.monotonic()
    answers = [client.post("/models/iris/predict", json={**IRIS_ROW, "sepal_length": n}) for n in range(20)]
    took = time.monotonic() - started

    assert [a.status_code for a in answers] == [200] * 20
    assert took < DEAD_STORE_BOUND_S
    assert errors_counted(app).get("get", 0) >= 1


def test_with_redis_back_the_replicas_share_again_without_a_restart(
    replica: Callable[[], Flask], redis_server: RedisServer
) -> None:
    first, second = replica().test_client(), replica().test_client()
    redis_server.stop()
    first.post("/models/iris/predict", json=IRIS_ROW)
    redis_server.start()
    time.sleep(1.1)  # the pause after a failed call (PAUSE_AFTER_ERROR_S)

    first.post("/models/iris/predict", json={**IRIS_ROW, "petal_width": 0.3})
    shared = second.post("/models/iris/predict", json={**IRIS_ROW, "petal_width": 0.3})

    assert (shared.status_code, shared.headers["X-Cache"]) == (200, "HIT")


def test_the_metrics_name_no_error_while_redis_answers(replica: Callable[[], Flask]) -> None:
    app = replica()
    app.test_client().post("/models/iris/predict", json=IRIS_ROW)

    assert errors_counted(app) == {}
    assert (
        samples(app.test_client().get("/metrics").text, "flaskserve_cache_lookups_total")[
            labels(model="iris", version="2", result="miss")
        ]
        == 1.0
    )
