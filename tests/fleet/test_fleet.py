"""Three replicas behave as one service: shared limits, a shared cache, and faults the fleet rides out.

Each replica is ``flaskserve serve`` on a host of its own (a network namespace with
its own address), on the same repository, key file and config; Redis runs on a
fourth host; nginx balances over the replicas. With a bounded closed-loop load
running through nginx:

* a rate limit of N a minute admits exactly N requests for the whole fleet,
  wherever they land;
* a row answered by one replica is a cache hit on another;
* a replica killed, then cut off the network, then brought back costs at most
  0.5 % of the requests, and it comes back with the models and keys of now;
* with Redis killed, every request is still answered, and once Redis is back
  the replicas share again without a restart;
* a version dropped into the repository goes live on every replica (``--watch``)
  with no failed request.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from cluster import LIMITED_MODEL, LOAD_SECONDS, REPLICA_PORT, Fleet, create_key

from flaskserve import testing
from metrics_text import samples
from reliability.load_loop import LoadResult, run_load

pytestmark = pytest.mark.e2e

RATE_LIMIT = 30
#: Requests that may fail while a replica dies and its link goes down: those in flight, at most 0.5 %.
MAX_FAILED_SHARE = 0.005
CONVERGE_S = 30.0


@pytest.fixture(scope="module")
def fleet(make_fleet: Callable[..., Fleet], fleet_repository: Path) -> Fleet:
    """One fleet for the module (starting replicas is the slow part); it watches the repository."""
    return make_fleet(
        fleet_repository,
        rate_limit=f"{RATE_LIMIT}/minute",
        extra_flags=["--watch"],
        env={"FLASKSERVE_WATCH_INTERVAL_S": "0.5"},
    )


def predict_linear(fleet: Fleet) -> Callable[[requests.Session], requests.Response]:
    """One prediction of an ever new row through nginx, so that the models keep working."""
    rows = itertools.count()
    headers = fleet.headers

    def request(session: requests.Session) -> requests.Response:
        row = next(rows)
        body = {"x": row % 1000, "y": row // 1000}
        return session.post(
            fleet.nginx.url + "/models/linear/predict", json=body, headers=headers, timeout=10
        )

    return request


@contextmanager
def load(fleet: Fleet, seconds: float = LOAD_SECONDS) -> Iterator[LoadResult]:
    """Closed-loop load through nginx while the block runs (and at least ``seconds``); the result after."""
    result = LoadResult()
    stop = threading.Event()

    def drive() -> None:
        found = run_load(predict_linear(fleet), threads=4, duration_s=seconds + CONVERGE_S, stop=stop)
        result.outcomes, result.latencies, result.seconds = found.outcomes, found.latencies, found.seconds

    started = time.monotonic()
    thread = threading.Thread(target=drive, name="fleet-load")
    thread.start()
    try:
        yield result
    finally:
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
        stop.set()
        thread.join(seconds + CONVERGE_S + 30)


def iris_row(n: int) -> dict[str, float]:
    return {"sepal_length": 5.0 + n / 100, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def test_a_rate_limit_holds_for_the_whole_fleet(fleet: Fleet) -> None:
    entrances = [fleet.nginx.url, *(replica.url for replica in fleet.replicas)]

    with load(fleet, seconds=LOAD_SECONDS / 2) as background:
        statuses = [
            fleet.post(
                entrances[n % len(entrances)], f"/models/{LIMITED_MODEL}/predict", iris_row(n)
            ).status_code
            for n in range(3 * RATE_LIMIT)
        ]

    assert statuses.count(200) == RATE_LIMIT, statuses
    assert statuses.count(429) == 2 * RATE_LIMIT
    assert background.failures() == 0, background.summary()


def test_a_row_answered_by_one_replica_is_a_hit_on_another(fleet: Fleet) -> None:
    first, *others = fleet.replicas
    row = {"x": 123.25, "y": -7.5}

    answered = fleet.post(first.url, "/models/linear/predict", row)
    elsewhere = [fleet.post(replica.url, "/models/linear/predict", row) for replica in others]

    assert (answered.status_code, answered.headers["X-Cache"]) == (200, "MISS"), storage_errors(fleet)
    assert [(r.status_code, r.headers["X-Cache"]) for r in elsewhere] == [(200, "HIT")] * len(others), (
        storage_errors(fleet)
    )
    assert all(r.json() == answered.json() for r in elsewhere)


def storage_errors(fleet: Fleet) -> str:
    """The shared cache's failures each replica counted, to explain a miss that should have been a hit."""
    counted = []
    for replica in fleet.replicas:
        text = requests.get(replica.url + "/metrics", headers=fleet.headers, timeout=10).text
        found = samples(text, "flaskserve_cache_storage_errors_total")
        counted.append(f"{replica.host.name}: {dict((dict(k)['operation'], v) for k, v in found.items())}")
    return "shared cache errors counted: " + "; ".join(counted)


def publish_version(repository: Path, name: str, version: str, model: Any, staging: Path) -> None:
    """Write a version beside the repository, then rename it into place: it appears whole, at once."""
    testing.save_model(model, staging / version / "model.skops")
    (repository / name / version).parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging / version, repository / name / version)


def test_a_replica_killed_then_cut_off_then_back_loses_almost_nothing(
    fleet: Fleet, fleet_repository: Path, iris_pipeline: Any, tmp_path: Path
) -> None:
    victim = fleet.replicas[-1]

    with load(fleet, seconds=LOAD_SECONDS) as result:
        time.sleep(0.5)
        victim.kill()
        time.sleep(0.5)
        fleet.network.cut(victim.host)
        # While it is away, the operator adds a key and the repository gets a new version.
        late_key = create_key(fleet.keys_file, "late", "predict")
        publish_version(fleet_repository, "iris", "2", iris_pipeline, tmp_path)
        time.sleep(0.5)
        fleet.network.mend(victim.host)
        victim.start()
        victim.wait_ready()
        time.sleep(0.5)

    print(f"\nreplica killed, cut off and back: {result.summary()}")
    failed = result.failures()
    assert failed <= MAX_FAILED_SHARE * result.total, result.summary()
    assert result.count("200") > 0
    back = fleet.post(victim.url, "/models/iris/predict", iris_row(500), key=late_key)
    assert back.status_code == 200, back.text
    assert back.headers["X-Model-Version"] == "2"
    assert f"{victim.host.address}:{REPLICA_PORT}" in answered_by(fleet, CONVERGE_S), "nginx uses it again"


def answered_by(fleet: Fleet, within_s: float) -> set[str]:
    """The replicas nginx sent requests to (``X-Upstream``) until every one answered, or ``within_s``."""
    seen: set[str] = set()
    deadline = time.monotonic() + within_s
    while len(seen) < len(fleet.replicas) and time.monotonic() < deadline:
        answer = fleet.post(fleet.nginx.url, "/models/linear/predict", {"x": 1, "y": 1})
        seen.add(answer.headers.get("X-Upstream", ""))
        time.sleep(0.05)
    return seen


def test_serving_continues_while_redis_is_killed_and_shares_again_once_it_is_back(fleet: Fleet) -> None:
    with load(fleet, seconds=LOAD_SECONDS / 2) as result:
        time.sleep(0.5)
        fleet.redis.stop()
        time.sleep(max(1.5, LOAD_SECONDS / 3))
        fleet.redis.start()

    print(f"\nRedis killed and restarted: {result.summary()}")
    assert set(result.outcomes) == {"200"}, result.summary()
    first, second = fleet.replicas[:2]
    row = {"x": 55.5, "y": 66.5}
    deadline = time.monotonic() + CONVERGE_S
    while True:
        fleet.post(first.url, "/models/linear/predict", row)
        shared = fleet.post(second.url, "/models/linear/predict", row)
        if shared.headers["X-Cache"] == "HIT" or time.monotonic() > deadline:
            break
        row = {"x": row["x"] + 1, "y": row["y"]}
        time.sleep(0.5)
    assert (shared.status_code, shared.headers["X-Cache"]) == (200, "HIT")


def test_a_version_dropped_into_the_repository_goes_live_on_every_replica_with_no_failure(
    fleet: Fleet, fleet_repository: Path, linear_xy: Any, tmp_path: Path
) -> None:
    live: set[str] = set()

    with load(fleet) as result:
        time.sleep(1.0)
        publish_version(fleet_repository, "linear", "2", linear_xy, tmp_path)
        deadline = time.monotonic() + CONVERGE_S
        while len(live) < len(fleet.replicas) and time.monotonic() < deadline:
            for replica in fleet.replicas:
                answer = fleet.post(replica.url, "/models/linear/predict", {"x": 1, "y": 2})
                if answer.headers.get("X-Model-Version") == "2":
                    live.add(replica.host.name)
            time.sleep(0.2)

    assert live == {replica.host.name for replica in fleet.replicas}
    assert set(result.outcomes) == {"200"}, result.summary()
