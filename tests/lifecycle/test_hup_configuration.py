"""``HUP`` on a real two-worker server reads the configuration file again, under load, failing no request.

CI runs it under gunicorn; ``AVAILABILITY_SERVERS="gunicorn granian"`` adds granian.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from flaskserve.security.keys import KeyStore
from live_server import RunningServer, ServerLauncher, children

SERVERS = os.environ.get("AVAILABILITY_SERVERS", "gunicorn").split()
WORKERS = 2
#: Bounds of the background load, whichever comes first.
LOAD_REQUESTS = 4000
LOAD_SECONDS = 60.0
#: How long the workers may take to be replaced after a HUP.
REPLACED_WITHIN_S = 30.0
#: Requests the probe may send, each on a new connection, to reach every worker.
PROBES = 200
NEW_LIMIT = 5

pytestmark = pytest.mark.e2e


class Load:
    """Predictions with one key from two threads, each on a kept-alive connection, until stopped."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self.statuses: Counter[int] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _run(self) -> None:
        deadline = time.monotonic() + LOAD_SECONDS
        with requests.Session() as session:
            for _ in range(LOAD_REQUESTS // len(self._threads)):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    status = session.post(
                        self.url + "/predict",
                        json={"x": 1, "y": 2},
                        headers={"Authorization": f"Bearer {self.key}"},
                        timeout=10,
                    ).status_code
                except requests.RequestException as exc:
                    with self._lock:
                        self.errors.append(type(exc).__name__)
                    continue
                with self._lock:
                    self.statuses[status] += 1


@pytest.fixture(params=SERVERS)
def served(
    request: pytest.FixtureRequest, models: Path, tmp_path: Path
) -> Iterator[tuple[RunningServer, Path]]:
    config = tmp_path / "flaskserve.toml"
    config.write_text('rate_limit = "100000/hour"\n')
    launcher = ServerLauncher(models, tmp_path)
    try:
        yield launcher.start("--config", str(config), "--server", request.param, workers=WORKERS), config
    finally:
        launcher.stop_all()


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    """Keys in the file the server reads from its working folder (the test's folder)."""
    store = KeyStore.load(tmp_path / "flaskserve-keys.json")
    created = {name: store.create(name, ["predict"]) for name in ("load", "probe")}
    store.save()
    return created


def _hup_and_wait_for_new_workers(server: RunningServer) -> None:
    old = set(server.worker_pids(WORKERS))
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + REPLACED_WITHIN_S
    while True:
        current = set(children(server.process.pid))
        if len(current) == WORKERS and not current & old:
            server.known_workers.update(dict.fromkeys(current, ""))
            return
        if time.monotonic() > deadline:
            pytest.fail(f"the workers were not replaced after HUP: {old} -> {current}\n{server.logs()}")
        time.sleep(0.05)


def _probe(server: RunningServer, key: str) -> tuple[Counter[int], set[str]]:
    """Statuses and rate-limit policies of predictions, each on a new connection, until every worker
    refuses the probe's key (or ``PROBES`` were sent)."""
    statuses: Counter[int] = Counter()
    policies: set[str] = set()
    for _ in range(PROBES):
        response = requests.post(
            server.url + "/predict",
            json={"x": 1, "y": 2},
            headers={"Authorization": f"Bearer {key}", "Connection": "close"},
            timeout=10,
        )
        statuses[response.status_code] += 1
        if "RateLimit-Policy" in response.headers:
            policies.add(response.headers["RateLimit-Policy"])
        if statuses[200] >= NEW_LIMIT * WORKERS:
            break
    return statuses, policies


def test_hup_applies_a_new_rate_limit_on_every_worker_and_an_invalid_file_changes_nothing(
    served: tuple[RunningServer, Path], keys: dict[str, str]
) -> None:
    server, config = served
    with Load(server.url, keys["load"]) as load:
        config.write_text('rate_limit = "lots"\n')
        _hup_and_wait_for_new_workers(server)
        assert _probe(server, keys["probe"])[1] == {"100000;w=3600"}

        config.write_text(f'rate_limit = "{NEW_LIMIT}/hour"\nthreads = 3\n')
        _hup_and_wait_for_new_workers(server)
    statuses, policies = _probe(server, keys["probe"])
    print(f"\nload through two HUPs: {dict(load.statuses)}, errors {load.errors}; probe {dict(statuses)}")

    assert load.errors == []
    assert set(load.statuses) <= {200, 429}, load.statuses  # 429: the new limit, which the load soon reaches
    assert load.statuses[200] > 0
    # Each worker counts alone in memory: NEW_LIMIT answers from each, so every worker applies it.
    assert statuses[200] == NEW_LIMIT * WORKERS, (statuses, server.logs())
    assert policies == {f"{NEW_LIMIT};w=3600"}
    records = server.log_records()
    refused = [r for r in records if r.get("message", "").startswith("the configuration was not reloaded")]
    assert len(refused) == 1
    assert "rate_limit" in refused[0]["error"]
    later = [r for r in records if "restart_needed" in r]
    assert [r["restart_needed"] for r in later] == [["threads"]]
    assert any(r.get("applied") == ["rate_limit"] for r in records)
