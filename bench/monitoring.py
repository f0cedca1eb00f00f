"""What model monitoring costs a prediction: drift counting and the inference log, side by side.

Two measurements, each as ratios against the same server or app without monitoring,
taken in alternating rounds so that a busy machine slows every configuration alike:

* **in-process**, one-row iris predictions through the app's WSGI callable: no
  monitoring; drift counting (a reference profile beside the model); drift and the
  inference log to a file (the enqueue is what the request pays);
* **served**, ``flaskserve serve`` with two workers under a closed loop of one-row
  requests from four kept-alive connections (this script's threads, so that the
  benchmark needs nothing but Python; the client's own overhead is the same in every
  row): no monitoring; drift and the inference log to a sink that takes 50 ms per
  event, so the workers' queues fill and records are dropped; and, when a PostgreSQL
  answers on 127.0.0.1:5432, drift and the log to a database of its own.

With ``--update-doc docs/monitoring.md`` the table replaces the one between the
``bench-monitoring`` markers there.

    python bench/monitoring.py [--rounds 3] [--seconds 5] [--update-doc docs/monitoring.md]
"""

from __future__ import annotations

import argparse
import http.client
import logging
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
import orjson
from inprocess import environ_for, time_requests
from process import ServerProcess, free_port, running

from flaskserve import testing
from flaskserve.app import create_app
from flaskserve.observability.monitoring import Monitoring, get_monitoring
from flaskserve.runtime import get_runtime
from flaskserve.settings import load_settings

ROW = orjson.dumps({"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2})
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
#: Concurrent kept-alive connections of the served measurement.
CONNECTIONS = 4
#: Records each worker's inference log queue holds in the served measurement.
QUEUE_SIZE = 200
#: Seconds the slow sink takes to accept each event.
SLOW_SINK_S = 0.05
_MARKERS = ("<!-- bench-monitoring:start -->", "<!-- bench-monitoring:end -->")


def repositories(folder: Path) -> tuple[Path, Path]:
    """The same iris model twice: without a reference profile, and with one."""
    model = testing.train_iris_classifier()
    plain = testing.write_repository(folder / "plain", {"iris": {"1": (model, ".skops")}})
    profiled = testing.write_repository(folder / "profiled", {"iris": {"1": (model, ".skops")}})
    from flaskserve.models.loaders import default_loaders
    from flaskserve.models.loading import load_registry
    from flaskserve.observability.drift.profiling import profile_model

    settings = load_settings(None, model_path=profiled)
    (served,) = load_registry(settings, default_loaders()).models()
    frame, _ = testing.iris_frame()
    profile_model(served, frame).write_beside(served.source)
    return plain, profiled


def in_process(plain: Path, profiled: Path, folder: Path, rounds: int, count: int) -> list[tuple[str, float]]:
    apps = {
        "no monitoring": create_app(load_settings(None, model_path=plain)),
        "drift": create_app(load_settings(None, model_path=profiled)),
        "drift + log to files": create_app(
            load_settings(None, model_path=profiled, inference_log=f"file://{folder / 'log'}")
        ),
    }
    make_environ = environ_for("/models/iris/predict", "application/json", ROW)
    times: dict[str, list[float]] = {name: [] for name in apps}
    for app in apps.values():
        time_requests(app, make_environ, 200)
    for _ in range(rounds):
        for name, app in apps.items():
            times[name].append(time_requests(app, make_environ, count))
    for app in apps.values():
        Monitoring.flush(app)
    found = [(name, statistics.median(values)) for name, values in times.items()]
    # The drift counting of one row alone, timed apart: on a busy machine its share is below the
    # noise of whole requests.
    drift = get_monitoring(apps["drift"]).drift
    (model,) = get_runtime(apps["drift"]).registry.models()
    matrix = np.array([[5.1, 3.5, 1.4, 0.2]])
    answers = {"predict": np.array(["setosa"], dtype=object)}
    rounds_of = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(count):
            drift.observe(model, matrix, answers)
        rounds_of.append((time.perf_counter() - started) / count)
    found.append(("drift counting alone (one row)", statistics.median(rounds_of)))
    return found


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
            connection.request("POST", "/models/iris/predict", body=ROW, headers=headers)
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
                urls[name] = f"http://127.0.0.1:{port}/models/iris/predict"
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

    text = http("GET", predict_url.replace("/models/iris/predict", "/metrics")).body.decode()
    found = re.findall(r'^flaskserve_inference_log_dropped_total\{reason="\w+"\} ([0-9.e+]+)$', text, re.M)
    return sum(float(value) for value in found)


def table(
    inprocess: list[tuple[str, float]], server: list[tuple[str, Any]], rounds: int, seconds: float
) -> str:
    base = inprocess[0][1]
    lines = [
        f"In-process, one-row iris prediction (median of {rounds} rounds):",
        "",
        "| configuration | µs per request | vs no monitoring |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {value * 1e6:.0f} | {value / base:.3f} |" for name, value in inprocess]
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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--update-doc", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        plain, profiled = repositories(folder)
        inprocess = in_process(plain, profiled, folder, args.rounds, args.requests)
        server = served(plain, profiled, folder, args.rounds, args.seconds)
    text = table(inprocess, server, args.rounds, args.seconds)
    print(text)
    if args.update_doc is not None:
        update_doc(args.update_doc, text)


if __name__ == "__main__":
    main()
