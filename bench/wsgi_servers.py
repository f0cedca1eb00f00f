"""The WSGI servers themselves: gunicorn's stock ``gthread`` worker, flaskserve's worker, granian.

``make bench`` compares model servers; this script compares the layer under them, side by side in
one run, sweeps its knobs and takes flaskserve's served request apart. Three modes:

``compare``
    a raw-WSGI hello-world and a Flask hello-world (``bench/peers``) under stock ``gthread``,
    under flaskserve's own gunicorn worker (``flaskserve.serving.gthread``, default client
    limits) and under granian; and flaskserve serving a one-row LinearRegression under its two
    servers.
``cache``
    the raw-WSGI hello-world under granian beside flaskserve under granian answering the same
    one-row body with the prediction cache off and on (``--cache-size 1000``): after the first
    request every answer is a cache hit.
``sweep``
    flaskserve's one-row prediction under each server with threads per worker, workers and
    keep-alive varied (keep-alive off is a client that sends ``Connection: close``, which is what
    a server with keep-alive off makes of every client), then granian's own knobs
    (``--backpressure``, ``--runtime-threads``) on the Flask hello-world.
``served``
    where a served one-row prediction's CPU goes beyond Flask's: under each server, the Flask
    hello-world, then flaskserve with its access lines and without them (``--log-level
    warning``); with ``--baseline SRC``, also flaskserve run from the source tree ``SRC`` (another
    checkout's ``src``), for a before/after in one run.

Each configuration runs as its own server process; every round measures all of them in turn, in
a rotated order, with wrk for a few seconds each, and the tables give the median over rounds of
requests per second and of the servers' CPU time per request (user + system of the server's
process group over the run, divided by the requests answered). On a machine that other work
shares, CPU per request is the steadier figure: it does not move with the CPU the server did not
get. The load average is printed with each table. Usage::

    python bench/wsgi_servers.py compare [--seconds 3] [--rounds 3] [--concurrency 64]
    python bench/wsgi_servers.py cache [--seconds 3] [--rounds 3] [--concurrency 16,64]
    python bench/wsgi_servers.py sweep [--seconds 3] [--rounds 3] [--concurrency 16,64]
    python bench/wsgi_servers.py served [--seconds 3] [--rounds 3] [--baseline OTHER/src]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import load
from process import ServerProcess, free_port, groups_cpu_seconds, running

import models

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEERS = HERE / "peers"
BIN = Path(sys.executable).parent
HELLO_BODY = b'{"x": 1, "y": 2}'
#: The client header that turns keep-alive off for a run.
CLOSE = {"Connection": "close"}


@dataclass(frozen=True)
class Config:
    """One server process and the request it is measured with."""

    app: str
    server: str
    settings: str
    argv: tuple[str, ...]
    port: int
    path: str = "/"
    body: bytes = HELLO_BODY
    env: dict[str, str] = field(default_factory=dict)
    ready: str | None = None
    close: bool = False

    @property
    def key(self) -> str:
        return f"{self.app} | {self.server} | {self.settings}"


@dataclass
class Figures:
    rps: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    errors: int = 0


def _gunicorn(app: str, module: str, port: int, workers: int, threads: int, worker: str | None) -> Config:
    argv = [str(BIN / "gunicorn"), "--workers", str(workers), "--threads", str(threads)]
    argv += ["--bind", f"127.0.0.1:{port}", "--no-control-socket"]
    if worker is not None:
        argv += ["--worker-class", worker]
    name = "gunicorn gthread (stock)" if worker is None else "gunicorn, flaskserve worker"
    return Config(app, name, f"{workers}w x {threads}t", (*argv, module), port)


def _granian(
    app: str, module: str, port: int, workers: int, threads: int, backpressure: int, runtime_threads: int = 1
) -> Config:
    argv = [str(BIN / "granian"), "--interface", "wsgi", "--workers", str(workers)]
    argv += ["--blocking-threads", str(threads), "--backpressure", str(backpressure)]
    argv += ["--runtime-threads", str(runtime_threads), "--host", "127.0.0.1", "--port", str(port)]
    settings = f"{workers}w x {threads}t, backpressure {backpressure}, runtime threads {runtime_threads}"
    return Config(app, "granian", settings, (*argv, "--no-ws", module), port)


def _flaskserve(
    model: models.BenchModel,
    port: int,
    server: str,
    workers: int,
    threads: int,
    *,
    close: bool = False,
    access_lines: bool = True,
    source: Path | None = None,
    cache_size: int = 0,
) -> Config:
    """flaskserve serving the one-row model; ``source``: run from that source tree instead of this one."""
    # Run as a module, so that PYTHONPATH (this tree's src or ``source``) decides which code serves.
    argv = [sys.executable, "-m", "flaskserve", "serve", str(model.path), "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", str(workers), "--threads", str(threads), "--allow-pickle"]
    argv += ["--server", server, "--max-batch-size", "1", "--max-batch-delay", "0"]
    argv += ["--cache-size", str(cache_size)]
    settings = f"{workers}w x {threads}t, keep-alive {'off' if close else 'on'}"
    if cache_size:
        settings += f", cache {cache_size} (hits)"
    if not access_lines:
        argv += ["--log-level", "warning"]
        settings += ", no access lines"
    app = "flaskserve, LinearRegression 1 row"
    return Config(
        app if source is None else f"{app} (baseline)",
        server,
        settings,
        tuple(argv),
        port,
        path="/predict",
        body=HELLO_BODY,
        ready="/v2/health/ready",
        close=close,
        env={} if source is None else {"PYTHONPATH": str(source)},
    )


WORKER_CLASS = "flaskserve.serving.gthread.HeadReadingWorker"
HELLO = (("hello-world WSGI", "hello_app:app"), ("Flask hello-world", "flask_hello_app:app"))


def compare_configs(model: models.BenchModel) -> list[Config]:
    configs = []
    for app, module in HELLO:
        configs.append(_gunicorn(app, module, free_port(), 2, 32, None))
        configs.append(_gunicorn(app, module, free_port(), 2, 32, WORKER_CLASS))

        configs.append(_granian(app, module, free_port(), 2, 32, 32))
    configs.append(_flaskserve(model, free_port(), "gunicorn", 2, 32))
    configs.append(_flaskserve(model, free_port(), "granian", 2, 32))
    return configs


def served_configs(model: models.BenchModel, baseline: Path | None) -> list[Config]:
    """Per server: the Flask hello-world, the baseline if any, flaskserve with and without access lines."""
    app, module = HELLO[1]
    configs = []
    for server in ("granian", "gunicorn"):
        if server == "granian":
            configs.append(_granian(app, module, free_port(), 2, 32, 32))
        else:
            configs.append(_gunicorn(app, module, free_port(), 2, 32, WORKER_CLASS))
        if baseline is not None:
            configs.append(_flaskserve(model, free_port(), server, 2, 32, source=baseline))
        configs.append(_flaskserve(model, free_port(), server, 2, 32))
        configs.append(_flaskserve(model, free_port(), server, 2, 32, access_lines=False))
    return configs


def cache_configs(model: models.BenchModel) -> list[Config]:
    app, module = HELLO[0]
    return [
        _granian(app, module, free_port(), 2, 32, 32),
        _flaskserve(model, free_port(), "granian", 2, 32),
        _flaskserve(model, free_port(), "granian", 2, 32, cache_size=1000),
    ]


#: A Python model that sleeps for each call: a model that waits on something, as one calling out does.
SLEEPING_MODEL = """
import time


class Model:
    feature_names_in_ = ["seconds"]

    def predict(self, features):
        time.sleep(float(features[0][0]))
        return features[:, 0]
"""
SLEEP_S = 0.02


def _sleeping(folder: Path, port: int, server: str, threads: int) -> Config:
    path = folder / "sleeping" / "model.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SLEEPING_MODEL, encoding="utf-8")
    argv = [str(BIN / "flaskserve"), "serve", str(path), "--allow-code", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", "2", "--threads", str(threads), "--server", server]
    return Config(
        f"flaskserve, model sleeping {SLEEP_S * 1000:g} ms",
        server,
        f"2w x {threads}t, keep-alive on",
        tuple(argv),
        port,
        path="/predict",
        body=b'{"seconds": %g}' % SLEEP_S,
        ready="/v2/health/ready",
    )


def sweep_configs(
    model: models.BenchModel, folder: Path, threads: Sequence[int], workers: Sequence[int]
) -> list[Config]:
    configs = []
    for server in ("gunicorn", "granian"):
        for count in threads:
            configs.append(_flaskserve(model, free_port(), server, 2, count))
        configs.append(_flaskserve(model, free_port(), server, 2, 4, close=True))
        for count in workers:
            if count != 2:
                configs.append(_flaskserve(model, free_port(), server, count, 4))
        for count in (4, 8, 32):
            configs.append(_sleeping(folder, free_port(), server, count))
    app, module = HELLO[1]
    for backpressure in (4, 32, 1000):
        configs.append(_granian(app, module, free_port(), 2, 4, backpressure))
    configs.append(_granian(app, module, free_port(), 2, 4, 1000, runtime_threads=2))
    return configs


@contextmanager
def started(configs: Sequence[Config], logs: Path) -> Iterator[list[ServerProcess]]:
    processes: list[ServerProcess] = []
    env = {"PYTHONPATH": str(REPO / "src")}
    with running(processes):
        for number, config in enumerate(configs):
            process = ServerProcess(
                config.key, config.argv, env={**env, **config.env}, cwd=PEERS, log_path=logs / f"{number}.log"
            )
            process.start()
            processes.append(process)
        for config, process in zip(configs, processes, strict=True):
            url = f"http://127.0.0.1:{config.port}"
            if config.ready:
                process.wait_ready(url + config.ready)
            else:
                process.wait_ready(url + config.path, method="POST", body=config.body)
        yield processes


def measure(
    configs: Sequence[Config], processes: Sequence[ServerProcess], concurrency: int, args: argparse.Namespace
) -> tuple[dict[str, Figures], list[float]]:
    wrk = load.find_wrk()
    figures = {config.key: Figures() for config in configs}
    loads: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        body_files = {}
        for number, config in enumerate(configs):
            body_files[config.key] = Path(scratch) / f"{number}.json"
            body_files[config.key].write_bytes(config.body)
        pairs = list(zip(configs, processes, strict=True))
        for config, _ in pairs:  # warm-up
            url = f"http://127.0.0.1:{config.port}{config.path}"
            load.run(wrk, url, body_files[config.key], concurrency, 1.0)
        for round_number in range(args.rounds):
            shift = round_number % len(pairs)
            for config, process in pairs[shift:] + pairs[:shift]:
                url = f"http://127.0.0.1:{config.port}{config.path}"
                before = groups_cpu_seconds([process.pgid])
                run = load.run(
                    wrk,
                    url,
                    body_files[config.key],
                    concurrency,
                    args.seconds,
                    CLOSE if config.close else None,
                )
                cpu = groups_cpu_seconds([process.pgid]) - before
                entry = figures[config.key]
                entry.rps.append(run.requests_per_second)
                entry.cpu_us.append(cpu / max(run.requests, 1) * 1e6)
                entry.errors += run.socket_errors + run.status_errors
            loads.append(os.getloadavg()[0])
            print(f"  round {round_number + 1}/{args.rounds}, concurrency {concurrency}", file=sys.stderr)
    return figures, loads


def _ratio(values: list[float], reference: list[float]) -> float:
    """The median over rounds of each round's ratio: rounds run close together, so their load is alike."""
    return statistics.median(value / base for value, base in zip(values, reference, strict=True) if base)


def table(
    configs: Sequence[Config],
    figures: dict[str, Figures],
    concurrency: int,
    loads: list[float],
    reference: str,
) -> str:
    """The figures, each configuration also against the first one of its group (``reference``)."""
    lines = [
        f"concurrency {concurrency}, medians of {len(loads)} rounds, "
        f"load average (1 min) {min(loads):.1f}-{max(loads):.1f}; ratios against {reference}",
        "",
        "| app | server | settings | req/s | ratio | CPU µs/request | ratio | errors |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    firsts: dict[tuple[str, str], Figures] = {}
    for config in configs:
        entry = figures[config.key]
        if reference == SERVER_ONLY:
            group = ("", config.server.split(",")[0])  # gunicorn with either worker
        elif reference == FIRST:
            group = ("", "")
        else:
            group = (config.app, config.server if reference == SAME_SERVER else "")
        first = firsts.setdefault(group, entry)
        lines.append(
            f"| {config.app} | {config.server} | {config.settings} | {statistics.median(entry.rps):,.0f} "
            f"| {_ratio(entry.rps, first.rps):.2f} | {statistics.median(entry.cpu_us):,.0f} "
            f"| {_ratio(entry.cpu_us, first.cpu_us):.2f} | {entry.errors} |"
        )
    return "\n".join(lines)


SAME_APP = "the first row of the same app"
SAME_SERVER = "the first row of the same app and server"
SERVER_ONLY = "the first row of the same server"
FIRST = "the first row"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("compare", "cache", "served", "sweep"))
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--concurrency", default=None, help="comma-separated (compare, served: 64; cache and sweep: 16,64)"
    )
    parser.add_argument("--threads", default="2,4,8,16,32", help="sweep: threads per worker")
    parser.add_argument("--workers", default="1,2,3", help="sweep: worker processes")
    parser.add_argument(
        "--baseline", type=Path, default=None, help="served: also run flaskserve from this source tree"
    )
    args = parser.parse_args(argv)
    default = "16,64" if args.mode in ("sweep", "cache") else "64"
    concurrencies = [int(value) for value in (args.concurrency or default).split(",")]
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wsgi-servers-")))
        model = models.train_linear(scratch)
        if args.mode == "compare":
            configs = compare_configs(model)
        elif args.mode == "served":
            configs = served_configs(model, args.baseline)
        elif args.mode == "cache":
            configs = cache_configs(model)
        else:
            threads = [int(value) for value in args.threads.split(",")]
            workers = [int(value) for value in args.workers.split(",")]
            configs = sweep_configs(model, scratch, threads, workers)
        processes = stack.enter_context(started(configs, scratch))
        for concurrency in concurrencies:
            started_at = time.monotonic()
            figures, loads = measure(configs, processes, concurrency, args)
            references = {"compare": SAME_APP, "sweep": SAME_SERVER, "served": SERVER_ONLY, "cache": FIRST}
            reference = references[args.mode]
            print(table(configs, figures, concurrency, loads, reference))
            print(f"\n({time.monotonic() - started_at:.0f} s)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
