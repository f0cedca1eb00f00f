"""``TERM`` drains the replica, then stops gracefully: readiness 503 at once, requests served, all answered.

Each case starts a real two-worker ``flaskserve serve`` with a drain delay,
fills it with :data:`IN_FLIGHT` slow requests (each in a model call for
``SLOW_S``, longer than the delay), sends ``TERM`` to the master while a client
keeps sending quick predictions, and then checks what a load balancer and the
clients saw: readiness 503 within a moment, quick predictions still 200 during
the delay, every slow request answered 200, and the server gone with exit 0
once it has nothing left to answer. CI runs it under gunicorn, the default server,
to stay within its time budget; ``AVAILABILITY_SERVERS="gunicorn granian"`` (as
``make availability`` sets it) adds granian.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from live_server import RunningServer, wait_until_gone

pytestmark = pytest.mark.e2e

SERVERS = os.environ.get("AVAILABILITY_SERVERS", "gunicorn").split()
DRAIN_DELAY_S = 2.0
#: Requests in a model call when TERM arrives.
IN_FLIGHT = 20
#: How long each of them takes: they outlast the drain delay, so the graceful stop must wait for them.
SLOW_S = 3.5
#: How soon after TERM a readiness probe must be answered 503 (counted to the probe's start: one or two
#: probes, each of which may take a while on a busy machine).
READY_FLIPS_WITHIN_S = 1.5


def _slow_request(url: str) -> int | str:
    try:
        return requests.post(
            url + "/models/slow/predict", json={"seconds": SLOW_S}, timeout=SLOW_S + 20
        ).status_code
    except requests.RequestException as error:
        return type(error).__name__


class QuickTraffic:
    """One client sending quick predictions in a closed loop until stopped (at most 2,000 of them)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.outcomes: list[tuple[float, int | str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with requests.Session() as session:
            for _ in range(2000):
                if self._stop.is_set():
                    return
                started = time.monotonic()
                try:
                    outcome: int | str = session.post(
                        self.url + "/predict", json={"x": 0.5, "y": 0.5}, timeout=10
                    ).status_code
                except requests.RequestException as error:
                    outcome = type(error).__name__
                self.outcomes.append((started, outcome))
                time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


def _first_unready(url: str, deadline_s: float) -> float | None:
    """Seconds from now to the start of the first ``/readyz`` probe answered 503; ``None`` if none was."""
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < deadline_s:
        if requests.get(url + "/readyz", timeout=5).status_code == 503:
            return elapsed
        time.sleep(0.05)
    return None


@pytest.mark.parametrize("server_name", SERVERS)
def test_term_drains_then_answers_every_request_in_flight_and_exits_0(
    start_server: Callable[..., RunningServer], slow_repository: Path, server_name: str
) -> None:
    server = start_server(
        "--server",
        server_name,
        "--allow-code",
        "--threads",
        str(IN_FLIGHT),
        model_path=slow_repository,
        workers=2,
        env={"FLASKSERVE_DRAIN_DELAY_S": str(DRAIN_DELAY_S)},
    )
    workers = server.worker_pids(2)
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        slow = [pool.submit(_slow_request, server.url) for _ in range(IN_FLIGHT)]
        quick = QuickTraffic(server.url)
        time.sleep(1.0)  # every slow request is in a model call
        signalled = time.monotonic()
        server.process.terminate()
        unready_after = _first_unready(server.url, DRAIN_DELAY_S)
        survivors = wait_until_gone([server.process.pid, *workers], timeout=DRAIN_DELAY_S + SLOW_S + 15)
        stopped_after = time.monotonic() - signalled
        quick.stop()
        slow_outcomes = [future.result() for future in slow]

    assert survivors == {}, f"still running: {survivors}"
    assert server.process.wait(timeout=5) == 0
    assert unready_after is not None, "readiness still answered 200 after the drain delay"
    assert unready_after < READY_FLIPS_WITHIN_S, f"readiness turned 503 only {unready_after:.2f} s after TERM"
    during_drain = [o for at, o in quick.outcomes if signalled <= at < signalled + DRAIN_DELAY_S - 0.5]
    assert during_drain, "no quick prediction was made during the drain delay"
    assert set(during_drain) == {200}, f"predictions during the drain: {during_drain}"
    assert slow_outcomes == [200] * IN_FLIGHT, f"the requests in flight at TERM: {slow_outcomes}"
    assert stopped_after >= DRAIN_DELAY_S, f"stopped {stopped_after:.1f} s after TERM, before the drain delay"
