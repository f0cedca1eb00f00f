"""A bounded load loop for the fault tests: a few client threads, a deadline and a request cap.

Each thread has its own ``requests`` session (kept-alive connections, as a real
client pool keeps them) and records, for every request, its status code or the
name of the exception it ended with, and its latency. Nothing is retried: a
request that fails is counted as failed.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

#: Seconds one request may take before it counts as failed (``ReadTimeout``).
REQUEST_TIMEOUT_S = 10.0

Request = Callable[[requests.Session], requests.Response]


@dataclass
class LoadResult:
    """What the clients saw: outcome counts (``"200"``, ``"ConnectionError"``…) and latencies."""

    outcomes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    #: ``time.monotonic()`` when each request that raised (no status) gave up.
    raised_at: list[float] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    def count(self, *outcomes: str) -> int:
        return sum(self.outcomes[o] for o in outcomes)

    def failures(self, answered: frozenset[str] = frozenset({"200"})) -> int:
        """Requests whose outcome is not in ``answered``."""
        return self.total - self.count(*answered)

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return math.nan
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] * 1000

    def summary(self, answered: frozenset[str] = frozenset({"200"})) -> str:
        rate = self.failures(answered) / max(1, self.total)
        return (
            f"{self.total} requests in {self.seconds:.1f} s ({self.total / max(self.seconds, 1e-9):.0f}/s), "
            f"{self.failures(answered)} failed ({rate:.2%}); p50 {self.percentile_ms(0.5):.1f} ms, "
            f"p99 {self.percentile_ms(0.99):.1f} ms, max {self.percentile_ms(1.0):.1f} ms; "
            f"outcomes {dict(sorted(self.outcomes.items()))}"
        )


def run_load(
    request: Request,
    *,
    threads: int = 4,
    duration_s: float,
    max_requests: int = 200_000,
    stop: threading.Event | None = None,
) -> LoadResult:
    """Requests from ``threads`` threads until ``duration_s`` passed (or ``max_requests``, or ``stop``)."""
    result = LoadResult()
    lock = threading.Lock()
    deadline = time.monotonic() + duration_s
    budget = [max_requests]
    stop = stop or threading.Event()

    def client() -> None:
        outcomes: Counter[str] = Counter()
        latencies: list[float] = []
        raised_at: list[float] = []
        with requests.Session() as session:
            while time.monotonic() < deadline and not stop.is_set():
                with lock:
                    if budget[0] <= 0:
                        break
                    budget[0] -= 1
                started = time.monotonic()
                try:
                    outcome = str(request(session).status_code)
                except requests.RequestException as error:
                    outcome = type(error).__name__
                    raised_at.append(time.monotonic())
                latencies.append(time.monotonic() - started)
                outcomes[outcome] += 1
        with lock:
            result.outcomes.update(outcomes)
            result.latencies.extend(latencies)
            result.raised_at.extend(raised_at)

    started = time.monotonic()
    workers = [threading.Thread(target=client, name=f"load-{n}") for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(duration_s + REQUEST_TIMEOUT_S + 5)
    result.seconds = time.monotonic() - started
    return result


class Periodic:
    """Calls ``action`` every ``interval_s`` in a thread of its own until stopped (a context manager)."""

    def __init__(self, interval_s: float, action: Callable[[], None]) -> None:
        self._interval_s = interval_s
        self._action = action
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="periodic", daemon=True)
        self.errors: list[BaseException] = []

    def __enter__(self) -> Periodic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(REQUEST_TIMEOUT_S + 5)

    def _run(self) -> None:
        # A fixed rate: the time the action takes does not push the next one back.
        next_at = time.monotonic() + self._interval_s
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            next_at += self._interval_s
            try:
                self._action()
            except Exception as error:  # reported by the test, not lost in a thread
                self.errors.append(error)


#: Seconds an ordinary prediction, measured beside abusive clients, may take before it counts as failed.
ORDINARY_TIMEOUT_S = 5.0


def timed_prediction(url: str) -> float | str:
    """Seconds one ordinary prediction took on a connection of its own, or why it failed."""
    started = time.monotonic()
    try:
        response = requests.post(url + "/predict", json={"x": 1, "y": 2}, timeout=ORDINARY_TIMEOUT_S)
    except requests.RequestException as error:
        return type(error).__name__
    if response.status_code != 200:
        return f"status {response.status_code}"
    return time.monotonic() - started
