"""Where a one-row prediction's microseconds go, through Flask and through the prediction lane.

Builds two apps on one LinearRegression, the same settings but ``fast_lane``,
and calls each one's WSGI callable with a prepared environ for ``POST /predict``
``{"x": 1, "y": 2}``: no socket, no server. Prints the time per request (the
median of several rounds) of each side by side with the two hello-world apps of
``bench/peers`` (Flask's and raw WSGI's, which answer a constant), then, for
each flaskserve path, the functions that took the most time of their own
(cProfile, top entries by ``tottime``).

``--rate-limit`` turns rate limits on in both apps (counted in memory, with a
limit no round reaches), to show what the check costs each path. ``--access-log``
writes each request's access line (JSON, to the null device) as ``flaskserve
serve`` does; without it no line is logged.

    python bench/lane.py [--requests 5000] [--rounds 5] [--top 15] [--rate-limit 100000000/minute]
                         [--access-log]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inprocess import environ_for, time_requests
from peers import flask_hello_app, hello_app

from flaskserve import testing
from flaskserve.app import create_app
from flaskserve.observability.logging import configure_logging
from flaskserve.settings import load_settings

BODY = b'{"x": 1, "y": 2}'


def profile(app: Any, make_environ: Callable[[], dict[str, Any]], count: int, top: int) -> str:
    """The ``top`` functions by own time over ``count`` requests, as pstats prints them."""
    profiler = cProfile.Profile()
    profiler.enable()
    time_requests(app, make_environ, count)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    # Keep the table: from the column header on.
    text = out.getvalue()
    return text[text.index("   ncalls") :].rstrip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--rate-limit", default=None, help="e.g. 100000000/minute; none by default")
    parser.add_argument("--access-log", action="store_true", help="write access lines to the null device")
    args = parser.parse_args()
    if args.access_log:
        configure_logging("info", "json", open(os.devnull, "w"))  # noqa: SIM115 (open for the whole run)
    with tempfile.TemporaryDirectory() as folder:
        repository = testing.write_repository(
            Path(folder), {"linear": {"1": (testing.train_linear_xy(), ".skops")}}
        )
        apps = {
            label: create_app(
                load_settings(
                    None,
                    model_path=repository,
                    default_model="linear",
                    fast_lane=on,
                    rate_limit=args.rate_limit,
                )
            )
            for label, on in (("Flask", False), ("lane", True))
        }
        make_environ = environ_for("/predict", "application/json", BODY)
        timed: dict[str, tuple[Any, Callable[[], dict[str, Any]]]] = {
            "Flask hello-world": (flask_hello_app.app, environ_for("/", "application/json", BODY)),
            "raw WSGI hello-world": (hello_app.app, environ_for("/", "application/json", BODY)),
            **{f"flaskserve, {label}": (app, make_environ) for label, app in apps.items()},
        }
        for app, environ in timed.values():
            time_requests(app, environ, 500)  # warm-up
        # Rounds alternate between the apps, so that a busy moment of the machine hits them all.
        rounds: dict[str, list[float]] = {label: [] for label in timed}
        for _ in range(args.rounds):
            for label, (app, environ) in timed.items():
                rounds[label].append(time_requests(app, environ, args.requests))
        medians = {label: statistics.median(times) for label, times in rounds.items()}
        print(f"| path | µs per request (median of {args.rounds} rounds of {args.requests}) | requests/s |")
        print("|---|---:|---:|")
        for label, seconds in medians.items():
            print(f"| {label} | {seconds * 1e6:.1f} | {1 / seconds:,.0f} |")
        hello = medians["Flask hello-world"]
        for label in ("flaskserve, Flask", "flaskserve, lane"):
            print(f"\n{label}: {hello / medians[label]:.2f}x the requests per second of Flask's hello-world.")
        for label, app in apps.items():
            print(f"\n{label}: top {args.top} by own time over {args.requests} requests\n")
            print(profile(app, make_environ, args.requests, args.top))


if __name__ == "__main__":
    main()
