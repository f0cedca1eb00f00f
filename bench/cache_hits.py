"""What a prediction-cache hit costs inside the process, by protocol, through the lane and through Flask.

Builds apps on one LinearRegression with the prediction cache on (``cache_size``),
one with the prediction lane and one without, and one with the lane and the cache
off for comparison. Each protocol's one-row request is sent once to fill the cache,
then timed again and again with the same body, so every timed request is a hit.
Logging is configured as ``flaskserve serve`` configures it (JSON lines, access
lines on), written to a stream that drops them. Each request is timed by CPU time, the
median over several rounds, so that other work on the machine inflates it
little: the calling thread's (``time.thread_time``), and the whole process's
(``time.process_time``, which adds the thread that formats and writes the log
lines; read once that thread has caught up). The raw-WSGI hello-world of
``bench/peers`` is timed the same way as the floor.
``--profile`` prints the functions that took the most time of their own on the
simple ``/predict`` hit through the lane.

    python bench/cache_hits.py [--requests 3000] [--rounds 7] [--profile 20]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from inprocess import CASES, environ_for
from peers import hello_app

from flaskserve import testing
from flaskserve.app import create_app
from flaskserve.observability.logging import configure_logging
from flaskserve.settings import load_settings

#: Each protocol's request, the simple protocol also by the model's own path.
ROUTES = (
    CASES[0],
    ("simple /models/<name>/predict, one row", "/models/linear/predict", "application/json", CASES[0][3]),
    *CASES[1:],
)
CACHE_SIZE = 1000
#: Seconds given to the log writer's thread after a round, to write the round's lines.
LOG_CATCH_UP_S = 0.3


class _Discarded(io.TextIOBase):
    """A text stream that keeps nothing: log lines are formatted and written, then dropped."""

    def write(self, text: str) -> int:
        return len(text)


def cpu_per_request(app: Any, make_environ: Callable[[], dict[str, Any]], count: int) -> tuple[float, float]:
    """Mean thread and process CPU seconds per request over ``count`` requests; fails on any non-200."""
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        statuses.append(status)

    process_started, started = time.process_time(), time.thread_time()
    for _ in range(count):
        chunks: Iterable[bytes] = app(make_environ(), start_response)
        for _chunk in chunks:
            pass
    elapsed = time.thread_time() - started
    time.sleep(LOG_CATCH_UP_S)
    process = time.process_time() - process_started
    failed = [status for status in statuses if not status.startswith("200")]
    if failed:
        raise SystemExit(f"requests failed: {failed[:3]}")
    return elapsed / count, process / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", type=int, default=0, help="top entries of a profile of one hit; 0: none")
    args = parser.parse_args()
    configure_logging("info", "json", _Discarded())
    with tempfile.TemporaryDirectory() as folder:
        repository = testing.write_repository(
            Path(folder), {"linear": {"1": (testing.train_linear_xy(), ".skops")}}
        )

        def app_with(fast_lane: bool, cache_size: int) -> Any:
            settings = load_settings(
                None,
                model_path=repository,
                default_model="linear",
                fast_lane=fast_lane,
                cache_size=cache_size,
            )
            return create_app(settings)

        apps = {
            "lane, cache hit": app_with(True, CACHE_SIZE),
            "Flask, cache hit": app_with(False, CACHE_SIZE),
            "lane, cache off": app_with(True, 0),
        }
        timed: dict[str, tuple[Any, Callable[[], dict[str, Any]]]] = {
            "raw WSGI hello-world": (hello_app.app, environ_for("/", "application/json", CASES[0][3]))
        }
        for label, path, content_type, body in ROUTES:
            for flavour, app in apps.items():
                timed[f"{label} | {flavour}"] = (app, environ_for(path, content_type, body))
        for app, make_environ in timed.values():
            cpu_per_request(app, make_environ, 200)  # fills the cache, warms up
        rounds: dict[str, list[tuple[float, float]]] = {label: [] for label in timed}
        for _ in range(args.rounds):
            for label, (app, make_environ) in timed.items():
                rounds[label].append(cpu_per_request(app, make_environ, args.requests))
        timed_as = f"median of {args.rounds} rounds of {args.requests}"
        print(f"| request | path | CPU µs per request, thread | process ({timed_as}) |")
        print("|---|---|---:|---:|")
        for label, times in rounds.items():
            request, _, flavour = label.partition(" | ")
            thread = statistics.median(t for t, _ in times) * 1e6
            process = statistics.median(p for _, p in times) * 1e6
            print(f"| {request} | {flavour or '-'} | {thread:.1f} | {process:.1f} |")
        if args.profile:
            app, make_environ = timed[f"{ROUTES[0][0]} | lane, cache hit"]
            profiler = cProfile.Profile(time.thread_time)
            profiler.enable()
            cpu_per_request(app, make_environ, args.requests)
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.profile)
            text = out.getvalue()
            print(f"\nsimple /predict hit through the lane: top {args.profile} by own time\n")
            print(text[text.index("   ncalls") :].rstrip())


if __name__ == "__main__":
    main()
