"""Redis, where rate-limit counters live, is stopped, restarted and flaps under load.

Each test starts its own ``redis-server`` on a free port (never the machine's
own Redis) and a two-worker server counting ``1000/minute`` per client in it.
Under load, Redis is killed, restarted, stopped with ``TERM``, restarted,
flapped (down and up every half second), and last frozen (``STOP``) for two
seconds, so that it hangs instead of refusing connections:

* with the fallback ``memory`` (the default) every request is answered, 200 or
  429, never a 500, and once Redis is back the workers count in it again,
  together, without a restart of flaskserve;
* with ``refuse``, requests made while Redis is down get 503 with
  ``Retry-After``, and 200 again as soon as it is back.

The CI form flaps for ``FAULT_SECONDS`` / 3 seconds (5 by default); ``make faults`` runs longer.
The last test makes deterministic the rarest case seen under load: counters lost between a refusal
and its answer.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import redis
import requests
from limits.errors import StorageError
from limits.storage import MemoryStorage
from load_loop import LoadResult, run_load

from flaskserve.app import create_app
from live_server import RunningServer, free_port

NEEDS_REDIS = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server on PATH")

FLAP_S = float(os.environ.get("FAULT_SECONDS", "15")) / 3
LIMIT = "1000/minute"
#: How long the workers may take to count in Redis again once it is back: the rate-limit policy checks
#: a dead storage with an exponential back-off (1, 2, 4 … 32 s between checks).
RECOVERY_S = 40.0
#: How long Redis is frozen (``SIGSTOP``) at the end: it hangs rather than refuses.
FROZEN_S = 2.0


class RedisProcess:
    """A ``redis-server`` of the test's own, without persistence, that can be killed and restarted."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(self.workdir)]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.02)
            finally:
                client.close()

    def freeze(self, seconds: float) -> None:
        """Stop the process (``STOP``) for ``seconds``: connections open, answers none, then ``CONT``."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        time.sleep(seconds)
        self.process.send_signal(signal.SIGCONT)

    def stop(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    server.stop()


def faults(store: RedisProcess, events: list[tuple[float, str]], settle: Callable[[], None]) -> None:
    """Kill, restart, stop, restart, flap, and (once ``settle`` returns) freeze Redis.

    ``events`` gets (time, what) of each change.
    """

    def note(what: str) -> None:
        events.append((time.monotonic(), what))

    time.sleep(1.0)
    store.stop(signal.SIGKILL)
    note("down")
    time.sleep(2.0)
    store.start()
    note("up")
    time.sleep(1.0)
    store.stop(signal.SIGTERM)
    note("down")
    time.sleep(1.0)
    store.start()
    note("up")
    flapping_until = time.monotonic() + FLAP_S
    while time.monotonic() < flapping_until:
        time.sleep(0.5)
        store.stop(signal.SIGKILL)
        note("down")
        time.sleep(0.5)
        store.start()
        note("up")
    settle()
    store.freeze(FROZEN_S)
    note("frozen")


def under_load(
    server: RunningServer, store: RedisProcess, settle: Callable[[], None]
) -> tuple[LoadResult, list[tuple[float, str]]]:
    """Predictions from four clients while :func:`faults` runs; returns what they saw and the changes."""
    stop = threading.Event()
    events: list[tuple[float, str]] = []
    outcome: list[LoadResult] = []

    def load() -> None:
        outcome.append(
            run_load(
                lambda session: session.post(server.url + "/predict", json={"x": 1, "y": 2}, timeout=10),
                threads=4,
                duration_s=120,
                stop=stop,
            )
        )

    clients = threading.Thread(target=load)
    clients.start()
    try:
        faults(store, events, settle)
        time.sleep(1.0)
    finally:
        stop.set()
        clients.join()
    return outcome[0], events


def remaining_in_a_row(server: RunningServer, count: int) -> list[int]:
    """``RateLimit-Remaining`` of ``count`` predictions of ``iris`` in a row, each on a new connection."""
    row = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
    values = []
    for _ in range(count):
        response = requests.post(server.url + "/models/iris/predict", json=row, timeout=10)
        assert response.status_code == 200, response.text
        values.append(int(response.headers["RateLimit-Remaining"]))
    return values


def counted_together(values: list[int]) -> bool:
    """Whether every request of a row took one from the same counter (with two workers counting in
    their own memory, the values go up again whenever the other worker answers)."""
    return all(later == earlier - 1 for earlier, later in itertools.pairwise(values))


def wait_until_counted_together(server: RunningServer) -> float:
    """Seconds until ten predictions in a row are counted in one counter; fails after ``RECOVERY_S``."""
    started = time.monotonic()
    while time.monotonic() - started < RECOVERY_S:
        if counted_together(remaining_in_a_row(server, 10)):
            return time.monotonic() - started
        time.sleep(0.5)
    pytest.fail(f"the workers did not count in Redis again within {RECOVERY_S:.0f} s")


@pytest.mark.e2e
@NEEDS_REDIS
def test_with_the_memory_fallback_every_request_is_answered_and_counting_recovers(
    start_server: Callable[..., RunningServer], redis_process: RedisProcess
) -> None:
    server = start_server("--rate-limit", LIMIT, "--rate-limit-storage", redis_process.url, workers=2)
    assert counted_together(remaining_in_a_row(server, 10))

    recoveries: list[float] = []
    result, events = under_load(
        server, redis_process, lambda: recoveries.append(wait_until_counted_together(server))
    )
    recoveries.append(wait_until_counted_together(server))

    print(
        f"\nmemory fallback: Redis went down {sum(e == 'down' for _, e in events)} times, then froze; "
        f"{result.summary(frozenset({'200', '429'}))}; counting in Redis again "
        f"{recoveries[0]:.1f} s after the flapping and {recoveries[1]:.1f} s after the freeze"
    )
    assert set(result.outcomes) <= {"200", "429"}, result.outcomes
    assert result.count("200") > 0


@pytest.mark.e2e
@NEEDS_REDIS
def test_with_refuse_requests_get_503_while_redis_is_down_and_200_once_it_is_back(
    start_server: Callable[..., RunningServer], redis_process: RedisProcess
) -> None:
    server = start_server(
        "--rate-limit",
        LIMIT,
        "--rate-limit-storage",
        redis_process.url,
        "--rate-limit-fallback",
        "refuse",
        workers=2,
    )

    redis_process.stop(signal.SIGKILL)
    refused = [server.post("/predict", json={"x": 1, "y": 2}) for _ in range(6)]
    redis_process.start()
    back = [server.post("/predict", json={"x": 1, "y": 2}).status_code for _ in range(6)]

    result, events = under_load(server, redis_process, lambda: time.sleep(1.0))
    statuses = Counter(result.outcomes)
    print(
        f"\nrefuse: Redis went down {sum(e == 'down' for _, e in events)} times; "
        f"{result.summary(frozenset({'200', '429', '503'}))}"
    )
    for response in refused:
        assert response.status_code == 503
        assert response.json()["code"] == "unavailable"
        assert int(response.headers["Retry-After"]) > 0
    assert back == [200] * 6
    assert set(statuses) <= {"200", "429", "503"}, statuses
    assert statuses["503"] > 0
    assert len(remaining_in_a_row(server, 1)) == 1, "a fresh counter answers 200 once Redis is back"


class CountsThenFails(MemoryStorage):
    """Counters whose window cannot be read once past one: the storage lost between a refusal and its answer.

    ``limits`` finds a storage by its scheme, so defining the class makes ``counts-then-fails://``
    a storage URL.
    """

    STORAGE_SCHEME: ClassVar[list[str]] = ["counts-then-fails"]

    def get_expiry(self, key: str) -> float:
        if super().get(key) > 1:
            raise StorageError(ConnectionError("the storage went away"))
        expiry: float = super().get_expiry(key)
        return expiry


@pytest.mark.parametrize("fallback", ["memory", "refuse"])
def test_a_refusal_is_a_429_even_when_the_counters_go_away_before_it_is_answered(
    make_settings: Callable[..., Any], fallback: str
) -> None:
    settings = make_settings(
        rate_limit="1/minute", rate_limit_storage="counts-then-fails://", rate_limit_fallback=fallback
    )
    client = create_app(settings).test_client()

    first, second = (client.post("/predict", json={"x": 1, "y": 2}) for _ in range(2))

    assert first.status_code == 200
    assert second.status_code == 429
    assert second.get_json()["code"] == "rate_limited"
    assert second.headers["Retry-After"] == "60"
