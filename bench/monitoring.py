"""What model monitoring costs a prediction: drift counting and the inference log, side by side.

Two measurements, each against the same app or server without monitoring, taken in
alternating rounds so that a busy machine slows every configuration alike:

* **in-process**, one-row ``/predict`` requests on the tutorial's linear regression
  (``flaskserve demo``'s model, with and without its ``reference.json``) through the
  app's WSGI callable, timed in the CPU time of the calling thread (what other
  processes take of a busy machine is not counted): the one-row request's own time
  is the denominator. Each round times drift off, drift on, and drift on with the
  inference log to files in turns of a few requests, in a rotating order; the cost
  of drift (and of the log's enqueue) is the median over rounds of each round's
  difference, as a share of the request without monitoring, judged against the 5 %
  target. Beside it, timed apart: the request's own part of drift
  (:meth:`DriftMonitor.observe`, a hand-over), the bulk counting that the
  worker's flush thread does later, per row, for flushes of a few sizes, and the
  request's own part of the inference log (:func:`queue_record` as the prediction
  lane calls it: the sampling draw and the hand-over of the request's facts);
* **served**, ``flaskserve serve`` with two workers under a closed loop of one-row
  requests from four kept-alive connections (this script's threads, so that the
  benchmark needs nothing but Python; the client's own overhead is the same in every
  row): no monitoring; drift and the inference log to a sink that takes 50 ms per
  event, so the workers' queues fill and records are dropped; and, when a PostgreSQL
  answers on 127.0.0.1:5432, drift and the log to a database of its own.

With ``--update-doc docs/monitoring.md`` the tables replace the ones between the
``bench-monitoring`` markers there.

    python bench/monitoring.py [--rounds 7] [--seconds 4] [--update-doc docs/monitoring.md]
"""

from __future__ import annotations

import argparse
import http.client
import logging
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from inprocess import environ_for
from process import ServerProcess, free_port, running

from flaskserve.app import create_app
from flaskserve.demo import DEMO_MODEL_NAME, train_demo_model
from flaskserve.observability.context import RequestNotes
from flaskserve.observability.drift.monitor import DriftMonitor
from flaskserve.observability.drift.profile import REFERENCE_FILE
from flaskserve.observability.drift.window import DriftWindow, TimeSlots
from flaskserve.observability.monitoring import Monitoring, get_monitoring, queue_record
from flaskserve.runtime import get_runtime
from flaskserve.settings import load_settings

#: One row of the tutorial model's two features.
ROW = b'{"x": 1.5, "y": 2.0}'
PREDICT = f"/models/{DEMO_MODEL_NAME}/predict"
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
#: Concurrent kept-alive connections of the served measurement.
CONNECTIONS = 4
#: Records each worker's inference log queue holds in the served measurement.
QUEUE_SIZE = 200
#: Seconds the slow sink takes to accept each event.
SLOW_SINK_S = 0.05
#: The share of a one-row request that monitoring may cost.
TARGET = 0.05
#: Requests a configuration is timed for before the next one takes its turn.
BLOCK = 25
#: One-row requests held before each timed flush of the bulk counting: a flush every half second
#: holds 10 of them at 20 requests a second, 1,000 at 2,000.
FLUSHED_ROWS = (10, 100, 1000)
#: Seconds the inference log's writer is given to write a round of enqueues before the next.
LOG_CATCH_UP_S = 0.3
_MARKERS = ("<!-- bench-monitoring:start -->", "<!-- bench-monitoring:end -->")

NO_MONITORING = "no monitoring"
DRIFT = "drift"
DRIFT_AND_LOG = "drift + log to files"


def repositories(folder: Path) -> tuple[Path, Path]:
    """The tutorial's model twice: without a reference profile, and with ``flaskserve demo``'s one."""
    profiled = train_demo_model(folder / "profiled")
    plain = train_demo_model(folder / "plain")
    (plain / DEMO_MODEL_NAME / "1" / REFERENCE_FILE).unlink()
    return plain, profiled


@dataclass(frozen=True)
class InProcess:
    """Seconds per one-row request: each configuration's median, and each cost's median round difference."""

    medians: dict[str, float]
    #: Each round's difference: drift on minus off, and drift with the log minus drift alone.
    drift_rounds: list[float]
    log_rounds: list[float]
    observe: float
    #: CPU seconds of the inference log's request part (the enqueue) per request.
    enqueue: float
    #: CPU seconds of bulk counting per row, by the number of rows flushed at once.
    flush_per_row: dict[int, float]
    rounds: int

    @property
    def base(self) -> float:
        return self.medians[NO_MONITORING]

    @property
    def drift(self) -> float:
        return statistics.median(self.drift_rounds)

    @property
    def log(self) -> float:
        return statistics.median(self.log_rounds)


def in_process(plain: Path, profiled: Path, folder: Path, rounds: int, count: int) -> InProcess:
    apps = {
        NO_MONITORING: create_app(load_settings(None, model_path=plain)),
        DRIFT: create_app(load_settings(None, model_path=profiled)),
        DRIFT_AND_LOG: create_app(
            load_settings(None, model_path=profiled, inference_log=f"file://{folder / 'log'}")
        ),
    }
    make_environ = environ_for(PREDICT, "application/json", ROW)
    names = list(apps)
    times: dict[str, list[float]] = {name: [] for name in apps}
    for app in apps.values():
        cpu_per_request(app, make_environ, 500)
    for _ in range(rounds):
        # Interleaved in blocks of BLOCK requests, in a rotating order, so that a burst of load from
        # elsewhere on the machine falls on every configuration alike.
        spent = dict.fromkeys(names, 0.0)
        for block in range(count // BLOCK):
            shift = block % len(names)
            for name in names[shift:] + names[:shift]:
                spent[name] += cpu_per_request(apps[name], make_environ, BLOCK)
        for name in names:
            times[name].append(spent[name] / (count // BLOCK))
    enqueue = log_part(apps[DRIFT_AND_LOG], rounds, count)
    for app in apps.values():
        Monitoring.flush(app)
    off, on, logged = times[NO_MONITORING], times[DRIFT], times[DRIFT_AND_LOG]
    observe, flush_per_row = drift_parts(apps[DRIFT], rounds, count)
    return InProcess(
        medians={name: statistics.median(values) for name, values in times.items()},
        drift_rounds=[b - a for a, b in zip(off, on, strict=True)],
        log_rounds=[c - b for b, c in zip(on, logged, strict=True)],
        observe=observe,
        enqueue=enqueue,
        flush_per_row=flush_per_row,
        rounds=rounds,
    )


def cpu_per_request(app: Any, make_environ: Callable[[], dict[str, Any]], count: int) -> float:
    """CPU seconds this thread spends per request over ``count`` requests; fails loudly on any non-200.

    The calling thread's CPU time, not the wall clock: what other processes take of a
    busy machine's cores is not counted, and neither is the work of this process's
    other threads (drift's flush and the log's writer, measured apart).
    """
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        statuses.append(status)

    started = time.thread_time()
    for _ in range(count):
        for _chunk in app(make_environ(), start_response):
            pass
    spent = time.thread_time() - started
    if any(not status.startswith("200") for status in statuses):
        raise SystemExit(f"requests failed: {statuses[:3]}")
    return spent / count


def drift_parts(app: Any, rounds: int, count: int) -> tuple[float, dict[int, float]]:
    """CPU seconds of drift's request part (the hand-over) per request, and of its bulk counting per row
    for flushes of each of FLUSHED_ROWS held one-row requests.

    Timed on a monitor of the app's models whose flush thread is never woken, so that
    every flush timed here is the one that finds the rows held.
    """
    registry = get_runtime(app).registry
    (model,) = registry.models()
    never = 10**9
    drift = DriftMonitor(
        registry,
        DriftWindow(TimeSlots(900.0)),
        flush_interval_s=3600.0,
        flush_rows=never,
        max_held_rows=never,
    )
    matrix = np.array([[1.5, 2.0]])
    answers = {"predict": np.array([7.0])}
    handed: list[float] = []
    flushed: dict[int, list[float]] = {rows: [] for rows in FLUSHED_ROWS}
    for _ in range(rounds):
        started = time.thread_time()
        for _ in range(count):
            drift.observe(model, matrix, answers)
        handed.append((time.thread_time() - started) / count)
        drift.flush()
        for rows in FLUSHED_ROWS:
            for _ in range(rows):
                drift.observe(model, matrix, answers)
            started = time.thread_time()
            drift.flush()
            flushed[rows].append((time.thread_time() - started) / rows)
    return statistics.median(handed), {rows: statistics.median(found) for rows, found in flushed.items()}


def log_part(app: Any, rounds: int, count: int) -> float:
    """CPU seconds of the inference log's request part per request: :func:`queue_record` as the lane calls it.

    Against the app's own writer (files), whose thread builds, serialises and writes
    the records meanwhile (not counted: it is not the request's thread). A pause after
    each round lets it catch up, so that no record timed here is dropped: a round
    enqueues far faster than requests arrive.
    """
    state = get_monitoring(app)
    (model,) = get_runtime(app).registry.models()
    exchange = (model, np.array([[1.5, 2.0]]), {"predict": np.array([7.0])})
    said = RequestNotes(model=model.name, version=model.version, method="predict", rows=1, protocol="simple")
    spent: list[float] = []
    for _ in range(rounds):
        started = time.thread_time()
        for number in range(count):
            queue_record(
                state,
                said,
                exchange,
                status=200,
                started=time.perf_counter(),
                request_id=f"bench-{number}",
                key_name=None,
            )
        spent.append((time.thread_time() - started) / count)
        time.sleep(LOG_CATCH_UP_S)
    return statistics.median(spent)


@contextmanager
def slow_sink() -> Iterator[str]:
    """An HTTP server that takes SLOW_SINK_S to accept each event."""
    from werkzeug.serving import make_server

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        time.sleep(SLOW_SINK_S)
        start_response("202 Accepted", [("Content-Length", "0")])
        return [b""]

    # Werkzeug would log a line per event.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@contextmanager
def database() -> Iterator[str | None]:
    try:
        import psycopg

        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True, connect_timeout=2) as connection:
            name = f"flaskserve_bench_{uuid.uuid4().hex[:8]}"
            connection.execute(f"CREATE DATABASE {name}")
    except Exception as exc:
        print(f"no PostgreSQL on 127.0.0.1:5432 ({exc}); its row is left out", file=sys.stderr)
        yield None
        return
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass(frozen=True)
class LoadRun:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds


def closed_loop(port: int, connections: int, seconds: float) -> LoadRun:
    """Each connection sends its next request as soon as the answer to the last one is in."""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    failures: list[int] = []
    deadline = time.monotonic() + seconds

    def client(mine: list[float]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Content-Type": "application/json"}
        while time.monotonic() < deadline:
            started = time.perf_counter()
            connection.request("POST", PREDICT, body=ROW, headers=headers)
            answer = connection.getresponse()
            answer.read()
            mine.append(time.perf_counter() - started)
            if answer.status != 200:
                failures.append(answer.status)
        connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(mine,)) for mine in latencies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    if failures:
        raise SystemExit(f"requests failed: {failures[:3]}")
    every = sorted(value for mine in latencies for value in mine)
    return LoadRun(
        requests=len(every),
        seconds=elapsed,
        p50_ms=every[len(every) // 2] * 1000,
        p99_ms=every[min(len(every) - 1, int(len(every) * 0.99))] * 1000,
    )


def served(plain: Path, profiled: Path, folder: Path, rounds: int, seconds: float) -> list[tuple[str, Any]]:
    with slow_sink() as sink_url, database() as pg_url:
        slow = f"drift + log to a sink taking {SLOW_SINK_S * 1000:.0f} ms an event (queue of {QUEUE_SIZE})"
        configs: dict[str, tuple[Path, list[str]]] = {
            "no monitoring": (plain, []),
            "drift": (profiled, []),
            slow: (profiled, ["--inference-log", sink_url]),
        }
        if pg_url is not None:
            configs["drift + log to PostgreSQL"] = (profiled, ["--inference-log", pg_url])
        servers: list[ServerProcess] = []
        urls: dict[str, str] = {}
        ports: dict[str, int] = {}
        with running(servers):
            for number, (name, (path, flags)) in enumerate(configs.items()):
                port = free_port()
                process = ServerProcess(
                    name,
                    [
                        sys.executable,
                        "-m",
                        "flaskserve",
                        "serve",
                        str(path),
                        "--port",
                        str(port),
                        "--workers",
                        "2",
                        "--log-level",
                        "warning",
                        *flags,
                    ],
                    # A small queue for the slow sink, so that it fills within the first run and drops.
                    env={"FLASKSERVE_INFERENCE_LOG_QUEUE_SIZE": str(QUEUE_SIZE)} if name == slow else {},
                    cwd=folder,
                    log_path=folder / f"server-{number}.log",
                )
                servers.append(process)
                process.start()
                urls[name] = f"http://127.0.0.1:{port}{PREDICT}"
                ports[name] = port
                process.wait_ready(urls[name], "POST", ROW)
            runs: dict[str, list[Any]] = {name: [] for name in configs}
            for name in configs:
                closed_loop(ports[name], CONNECTIONS, 1.0)  # warm-up
            for _ in range(rounds):
                for name in configs:
                    runs[name].append(closed_loop(ports[name], CONNECTIONS, seconds))
            dropped = {name: _dropped(urls[name]) for name in configs}
    return [(name, (runs[name], dropped[name])) for name in configs]


def _dropped(predict_url: str) -> float:
    from process import http

    text = http("GET", predict_url.replace(PREDICT, "/metrics")).body.decode()
    found = re.findall(r'^flaskserve_inference_log_dropped_total\{reason="\w+"\} ([0-9.e+]+)$', text, re.M)
    return sum(float(value) for value in found)


def verdict(share: float) -> str:
    return "pass" if share < TARGET else "miss"


def table(inprocess: InProcess, server: list[tuple[str, Any]], rounds: int, seconds: float) -> str:
    base = inprocess.base
    load = "{:.1f}, {:.1f}, {:.1f}".format(*os.getloadavg())
    lines = [
        f"In-process, one-row `/predict` on the tutorial's LinearRegression through the app's WSGI callable, "
        f"CPU time of the requesting thread (medians of {inprocess.rounds} rounds; load average at the end "
        f"{load}):",
        "",
        "| configuration | µs per request |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {value * 1e6:.0f} |" for name, value in inprocess.medians.items()]
    lines += [
        "",
        f"What monitoring costs a one-row request (the denominator: {base * 1e6:.0f} µs without monitoring), "
        f"against the {TARGET:.0%} target:",
        "",
        "| cost | µs | rounds from … to (µs) | share of the one-row request | < 5 % |",
        "|---|---:|---:|---:|---|",
    ]
    spreads = {
        "drift": f"{min(inprocess.drift_rounds) * 1e6:.0f} … {max(inprocess.drift_rounds) * 1e6:.0f}",
        "log": f"{min(inprocess.log_rounds) * 1e6:.0f} … {max(inprocess.log_rounds) * 1e6:.0f}",
    }
    rows = [
        ("drift, side by side (median of each round's on minus off)", inprocess.drift),
        ("inference log to files, side by side (each round's log minus drift)", inprocess.log),
        ("drift's request part alone (the hand-over to the worker's flush)", inprocess.observe),
        ("inference log's request part alone (the enqueue: sampling draw and hand-over)", inprocess.enqueue),
    ]
    for flushed, per_row in inprocess.flush_per_row.items():
        rows.append((f"drift's bulk counting, per row, in flushes of {flushed} rows", per_row))
    most = max(inprocess.flush_per_row)
    rows.append(
        (
            f"drift's request part + bulk counting per row ({most} rows a flush)",
            inprocess.observe + inprocess.flush_per_row[most],
        )
    )
    for number, (name, value) in enumerate(rows):
        spread = spreads["drift" if number == 0 else "log"] if number < 2 else ""
        share = value / base
        lines.append(f"| {name} | {value * 1e6:.1f} | {spread} | {share:.1%} | {verdict(share)} |")
    if not server:
        return "\n".join(lines)
    first_runs = server[0][1][0]
    p99_base = statistics.median(r.p99_ms for r in first_runs)
    lines += [
        "",
        f"Served by two workers, {CONNECTIONS} connections in a closed loop, {seconds:g} s a run "
        f"(medians of {rounds} runs):",
        "",
        "| configuration | req/s | p50 ms | p99 ms | p99 vs no monitoring | records dropped |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, (runs, dropped) in server:
        p50 = statistics.median(r.p50_ms for r in runs)
        p99 = statistics.median(r.p99_ms for r in runs)
        rps = statistics.median(r.requests_per_second for r in runs)
        lines.append(f"| {name} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {p99 / p99_base:.2f} | {dropped:.0f} |")
    return "\n".join(lines)


def update_doc(path: Path, text: str) -> None:
    document = path.read_text(encoding="utf-8")
    start, end = _MARKERS
    before, _, rest = document.partition(start)
    _, _, after = rest.partition(end)
    path.write_text(f"{before}{start}\n{text}\n{end}{after}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--update-doc", type=Path)
    parser.add_argument("--no-served", action="store_true", help="the in-process measurement alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        plain, profiled = repositories(folder)
        inprocess = in_process(plain, profiled, folder, args.rounds, args.requests)
        server = [] if args.no_served else served(plain, profiled, folder, args.rounds, args.seconds)
    text = table(inprocess, server, args.rounds, args.seconds)
    print(text)
    if args.update_doc is not None:
        update_doc(args.update_doc, text)


if __name__ == "__main__":
    main()
