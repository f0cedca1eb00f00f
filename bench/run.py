"""Benchmark flaskserve against the servers people would otherwise use, side by side in one run.

Usage (from the repository root)::

    .venv/bin/python bench/run.py          # full run, ~15 minutes on 2 cores; updates docs/benchmarks.md
    .venv/bin/python bench/run.py --quick  # smoke run, ~2 minutes; writes bench/results/ only

The run trains its models into a scratch folder, times ``model.predict`` in process (the compute
floor), starts every server at once, checks each one answers the benchmark request correctly,
then measures them in turn with wrk, rotating the order between repetitions so that drift on
the machine spreads over all servers instead of favouring one.  A memory phase follows, then
the report is printed and written.  Every process started is stopped, by process group, on the
way out, including on Ctrl-C.

Needs wrk on PATH and, for the MLServer rows, ``bench/setup_peers.sh`` run once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import load
import servers
from process import (
    ServerError,
    ServerProcess,
    free_port,
    group_memory,
    groups_cpu_seconds,
    http,
    machine_busy_seconds,
    wait_until_settled,
)
from report import Case, Context, Floor, Row, render
from results import Goals, MemoryResult, Summary, check_targets, summarize
from servers import Layout, Server, Tuning

import models
from models import BenchModel

REPO = Path(__file__).resolve().parent.parent
MLSERVER_VENV = REPO / "bench" / ".venvs" / "mlserver"
MAIN_PACKAGES = ("flaskserve", "flask", "werkzeug", "gunicorn", "scikit-learn", "numpy", "joblib", "orjson")
# Cores used by other processes during a run above which the run is flagged as disturbed.
OTHER_LOAD_WARNING = 0.1
MLSERVER_PACKAGES = ("mlserver", "mlserver-sklearn", "uvicorn", "fastapi", "uvloop", "scikit-learn", "numpy")


class Patience:
    """Seconds the run may still spend waiting for other processes on the machine."""

    def __init__(self, seconds: float) -> None:
        self.left = seconds

    def spend(self, seconds: float) -> None:
        self.left -= seconds


@dataclass(frozen=True)
class Target:
    """A server plus the request it is measured with."""

    server: Server
    model: BenchModel | None
    rows: int = 1

    @property
    def key(self) -> str:
        return self.server.key

    @property
    def url(self) -> str:
        return self.server.base_url + self.server.predict_path

    @property
    def body(self) -> bytes:
        return self.server.body_for(self.model)

    @property
    def label(self) -> str:
        return f"{self.server.name} ({self.server.settings})"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    parser.add_argument(
        "--repetitions", type=int, default=3, help="runs per server and concurrency (default 3)"
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of unmeasured load per server (default 2)"
    )
    parser.add_argument(
        "--concurrency", default="1,16,64", help="comma-separated connection counts (default 1,16,64)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 s runs, 1 repetition, docs untouched"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes for every multi-process server"
    )
    parser.add_argument(
        "--threads", type=int, default=32, help="threads per worker for flaskserve and gunicorn"
    )
    parser.add_argument("--max-batch-size", type=int, default=64, help="rows per batch when batching is on")
    parser.add_argument("--max-batch-delay", type=float, default=5.0, help="ms a batch may wait to fill")
    parser.add_argument("--cache-size", type=int, default=1024, help="entries in flaskserve's cache (case 3)")
    parser.add_argument("--cases", default="1,2,3,memory", help="which cases to run (default 1,2,3,memory)")
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="extra attempts for a run that other processes on the machine disturbed (default 2)",
    )
    parser.add_argument(
        "--patience",
        type=float,
        default=180.0,
        help="seconds the whole run may wait for other processes to leave the CPU idle (default 180)",
    )
    parser.add_argument("--skip-mlserver", action="store_true", help="leave MLServer out of the line-up")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="Markdown report to write (default docs/benchmarks.md, none with --quick)",
    )
    parser.add_argument(
        "--results-dir", type=Path, default=REPO / "bench" / "results", help="raw results folder"
    )
    parser.add_argument("--keep-scratch", action="store_true", help="keep models, configs and server logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.repetitions, args.warmup, args.patience = 2.0, 1, 1.0, 20.0
    if args.output is None and not args.quick:
        args.output = REPO / "docs" / "benchmarks.md"
    args.concurrency = [int(part) for part in args.concurrency.split(",") if part]
    args.cases = {part.strip() for part in args.cases.split(",") if part.strip()}
    return args


def say(message: str) -> None:
    print(message, flush=True)


@contextmanager
def running(processes: list[ServerProcess]) -> Iterator[None]:
    """Stops every process in ``processes`` on the way out, whatever happened inside."""
    try:
        yield
    finally:
        for process in reversed(processes):
            process.stop()


def start_servers(targets: Sequence[Target], logs: Path, processes: list[ServerProcess]) -> list[Target]:
    """Starts every target's server, waits for all, and returns those that answer correctly.

    All start at once because model loading and MLServer's worker start-up overlap well, and
    idle servers take no measurable CPU from the one under load.
    """
    started = []
    for target in targets:
        server = target.server
        process = ServerProcess(
            server.key, server.argv, env=server.env, cwd=server.cwd, log_path=logs / f"{server.key}.log"
        )
        process.start()
        processes.append(process)
        started.append((target, process))
    ready = []
    for target, process in started:
        try:
            wait_ready(target, process)
            verify(target)
        except (ServerError, OSError) as error:
            say(f"  ✗ {target.label}: {error}")
            process.stop()
            continue
        say(f"  ✓ {target.label} on port {target.server.port}")
        ready.append(target)
    return ready


def wait_ready(target: Target, process: ServerProcess) -> None:
    server = target.server
    if server.ready_path is not None:
        process.wait_ready(server.base_url + server.ready_path)
    else:
        process.wait_ready(target.url, method="POST", body=target.body)


def verify(target: Target) -> None:
    """Fails unless the benchmark request gets a 200 with a prediction in it.

    Without this a server answering 4xx to a malformed body would look fast: wrk would count
    its errors, but a quick reader of the table might not.
    """
    reply = http("POST", target.url, target.body, timeout=30)
    text = reply.body.decode(errors="replace")
    if reply.status != 200:
        raise ServerError(f"benchmark request got HTTP {reply.status}: {text[:300]}")
    answer = json.loads(text)
    expected = "outputs" if target.server.protocol == "v2" else "prediction"
    if not any(key.startswith(expected) for key in answer):
        raise ServerError(f"benchmark request got no {expected!r}: {text[:300]}")


def measure(
    targets: Sequence[Target],
    args: argparse.Namespace,
    wrk: str,
    scratch: Path,
    processes: Sequence[ServerProcess],
) -> tuple[dict[tuple[str, int], list[load.LoadRun]], dict[tuple[str, int], list[float]], set[str]]:
    """wrk against every target at every concurrency, ``args.repetitions`` times, order rotating.

    Also returns, per run, the cores that processes other than the servers and wrk used while
    it ran: on a shared machine that is the first thing to look at when a figure is odd.
    """
    bodies = {}
    for target in targets:
        path = scratch / f"{target.key}.json"
        path.write_bytes(target.body)
        bodies[target.key] = path
    by_key = {process.name: process for process in processes}
    groups = [by_key[target.key].pgid for target in targets]
    say(f"warming up {len(targets)} servers for {args.warmup:g} s each")
    for target in targets:
        load.run(wrk, target.url, bodies[target.key], max(args.concurrency), args.warmup)
        wait_until_settled(groups, max_other=float("inf"), timeout=10.0)
    runs: dict[tuple[str, int], list[load.LoadRun]] = {}
    foreign: dict[tuple[str, int], list[float]] = {}
    patience = Patience(args.patience)
    restarted: set[str] = set()
    alive = list(targets)
    total = args.repetitions * len(args.concurrency) * len(targets)
    done = 0
    for repetition in range(args.repetitions):
        for index, concurrency in enumerate(args.concurrency):
            shift = (repetition * len(args.concurrency) + index) % max(len(alive), 1)
            for target in alive[shift:] + alive[:shift]:
                done += 1
                try:
                    result, other = _measure_one(
                        target,
                        by_key[target.key],
                        groups,
                        wrk,
                        bodies[target.key],
                        concurrency,
                        args,
                        patience,
                        restarted,
                    )
                except (ServerError, load.LoadError) as error:
                    say(f"  ✗ {target.label}: {error}; dropping it")
                    alive.remove(target)
                    continue
                runs.setdefault((target.key, concurrency), []).append(result)
                foreign.setdefault((target.key, concurrency), []).append(other)
                errors = result.socket_errors + result.status_errors
                say(
                    f"[{done:>3}/{total}] rep {repetition + 1} c={concurrency:<3} {target.label}: "
                    f"{result.requests_per_second:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
                    f"p99 {result.p99_ms:.2f} ms"
                    + (f", {errors} errors" if errors else "")
                    + (f", other load {other:.2f} cores" if other >= OTHER_LOAD_WARNING else "")
                )
    if restarted:
        say(f"restarted during the run: {', '.join(sorted(restarted))}")
    return runs, foreign, restarted


def _measure_one(
    target: Target,
    process: ServerProcess,
    groups: list[int],
    wrk: str,
    body: Path,
    concurrency: int,
    args: argparse.Namespace,
    patience: Patience,
    restarted: set[str],
) -> tuple[load.LoadRun, float]:
    """One wrk run on a settled machine, tried again if other processes disturbed it.

    Returns the run and the cores other processes used during it; of several attempts, the
    least disturbed one is kept.  Waiting for other processes and retrying draw on one
    ``patience`` budget for the whole run, so a machine that is never quiet costs a bounded
    delay and the disturbed runs are flagged instead.  The servers' own backlog is always
    waited out.
    """
    best: tuple[load.LoadRun, float] | None = None
    process_group = process.pgid if process.running else -1
    for _ in range(1 + (args.retries if patience.left > 0 else 0)):
        try:
            process.check_alive()
        except ServerError as error:
            # Something outside the benchmark may stop a server (a clean-up that kills by
            # name); one restart keeps the line-up whole, and the report says it happened.
            say(f"  ! {target.label} died; restarting it once\n{error}")
            if target.key in restarted:
                raise
            restarted.add(target.key)
            process.stop()
            process.start()
            wait_ready(target, process)
            verify(target)
            groups[groups.index(process_group)] = process.pgid
        process_group = process.pgid
        if patience.left > 0:
            patience.spend(
                wait_until_settled(groups, max_other=OTHER_LOAD_WARNING, timeout=min(10.0, patience.left))
            )
        else:
            wait_until_settled(groups, max_other=float("inf"), timeout=10.0)
        before = _cpu_snapshot(groups)
        result = load.run(wrk, target.url, body, concurrency, args.duration)
        other = _cpu_snapshot(groups).others_since(before) / max(result.seconds, 1e-9)
        if best is None or other < best[1]:
            best = (result, other)
        if other < OTHER_LOAD_WARNING:
            break
    assert best is not None
    return best


@dataclass(frozen=True)
class _CpuSnapshot:
    machine: float
    servers: float
    children: float

    def others_since(self, before: _CpuSnapshot) -> float:
        """CPU seconds spent since ``before`` by neither the servers nor wrk."""
        return (
            (self.machine - before.machine)
            - (self.servers - before.servers)
            - (self.children - before.children)
        )


def _cpu_snapshot(groups: Sequence[int]) -> _CpuSnapshot:
    # wrk is a reaped child by the time the second snapshot is taken, so its CPU time is in
    # RUSAGE_CHILDREN; the servers are still running and are read from /proc.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return _CpuSnapshot(
        machine_busy_seconds(), groups_cpu_seconds(groups), children.ru_utime + children.ru_stime
    )


def measure_memory(
    layout: Layout, model: BenchModel, tuning: Tuning, flags: set[str], wrk: str, logs: Path
) -> list[MemoryResult]:
    """Idle memory of flaskserve and of the tutorial under gunicorn, with 1 and with 4 workers."""
    results = []
    have_flaskserve = all(flag in flags for flag in servers.FLASKSERVE_REQUIRED_FLAGS)
    for workers in (1, 4):
        lineup = [
            servers.tutorial_gunicorn(
                layout, f"mem-gunicorn-{workers}", model, tuning, free_port(), workers=workers
            )
        ]
        if have_flaskserve:
            lineup.insert(
                0,
                servers.flaskserve(
                    layout,
                    f"mem-flaskserve-{workers}",
                    model,
                    tuning,
                    free_port(),
                    flags=flags,
                    workers=workers,
                ),
            )
        for server in lineup:
            target = Target(server, model)
            process = ServerProcess(
                server.key, server.argv, env=server.env, cwd=server.cwd, log_path=logs / f"{server.key}.log"
            )
            with running([process]):
                process.start()
                try:
                    wait_ready(target, process)
                    verify(target)
                except ServerError as error:
                    say(f"  ✗ memory, {target.label}: {error}")
                    continue
                body = logs / f"{server.key}.json"
                body.write_bytes(target.body)
                # Enough load to reach every worker, so each has touched what serving touches.
                load.run(wrk, target.url, body, 16, 2.0)
                time.sleep(1.0)
                memory = group_memory(process.pgid)
            name = "flaskserve" if server.name == "flaskserve" else "tutorial app under gunicorn"
            results.append(MemoryResult(name, workers, memory.processes, memory.pss, memory.rss))
            say(
                f"  {name}, {workers} workers: "
                f"PSS {memory.pss / 2**20:.0f} MiB, RSS {memory.rss / 2**20:.0f} MiB"
            )
    return sorted(results, key=lambda result: (result.server != "flaskserve", result.server, result.workers))


def package_versions(python: Path, names: Sequence[str]) -> dict[str, str]:
    """Installed versions of ``names`` in the environment of ``python``."""
    probe = (
        "import json, sys\nfrom importlib import metadata\nout = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n        out[name] = metadata.version(name)\n"
        "    except metadata.PackageNotFoundError:\n        out[name] = 'not installed'\n"
        "print(json.dumps(out))"
    )
    result = subprocess.run([str(python), "-c", probe, *names], capture_output=True, text=True, check=False)
    return json.loads(result.stdout) if result.returncode == 0 else {}


def flaskserve_revision() -> str:
    result = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return "no commit yet"
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "src"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return result.stdout.strip() + (" with uncommitted changes" if dirty else "")


def machine() -> list[tuple[str, str]]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    system = platform.platform()
    try:
        release = dict(
            line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line
        )
        system = f"{release['PRETTY_NAME'].strip(chr(34))}, Linux {platform.release()}"
    except (OSError, KeyError):
        pass
    return [
        ("nproc", str(len(os.sched_getaffinity(0)))),
        ("CPU", cpu),
        ("memory", memory),
        ("system", system),
        ("Python", platform.python_version()),
    ]


def build_lineup(
    args: argparse.Namespace,
    layout: Layout,
    tuning: Tuning,
    flags: set[str],
    trained: dict[str, BenchModel],
    with_mlserver: bool,
) -> tuple[list[Target], list[Case], dict[str, list[str]], list[str]]:
    """The targets to run, the tables they form, the rows each target check compares, and notes."""
    targets: list[Target] = []
    keys: dict[str, list[str]] = {}
    notes: list[str] = []
    have_flaskserve = all(flag in flags for flag in servers.FLASKSERVE_REQUIRED_FLAGS)
    have_batching = all(flag in flags for flag in servers.FLASKSERVE_BATCHING_FLAGS)
    have_cache = all(flag in flags for flag in servers.FLASKSERVE_CACHE_FLAGS)
    have_granian = "--server" in flags and (layout.venv_bin / "granian").exists()

    def add(role: str | None, server: Server, model: BenchModel | None) -> Row:
        targets.append(Target(server, model))
        if role:
            keys.setdefault(role, []).append(server.key)
        return Row(server.key, server.name, server.settings)

    def absent(name: str, why: str) -> Row:
        return Row(f"absent-{name}", name, "", skipped=why)

    cases: list[Case] = []
    hello_row = Row("hello", "hello-world WSGI", "")
    hello_granian_row = Row("hello-granian", "hello-world WSGI", "granian")
    if args.cases & {"1", "3"}:
        hello_row = add("hello", servers.hello(layout, "hello", tuning, free_port()), None)
        if have_granian:
            hello_granian_row = add(
                "hello-granian", servers.hello_granian(layout, "hello-granian", tuning, free_port()), None
            )
    if "1" in args.cases:
        linear = trained["linear"]
        rows = []
        if have_flaskserve:
            rows.append(
                add(
                    "c1-flaskserve",
                    servers.flaskserve(layout, "c1-flaskserve", linear, tuning, free_port(), flags=flags),
                    linear,
                )
            )
        else:
            rows.append(absent("flaskserve", "not measured: `flaskserve serve` is not available"))
        if have_granian:
            rows.append(
                add(
                    "c1-flaskserve-granian",
                    servers.flaskserve(
                        layout,
                        "c1-flaskserve-granian",
                        linear,
                        tuning,
                        free_port(),
                        flags=flags,
                        granian=True,
                    ),
                    linear,
                )
            )
        rows.append(
            add("c1-app-run", servers.tutorial_dev_server(layout, "c1-app-run", linear, free_port()), linear)
        )
        rows.append(
            add(
                "c1-gunicorn",
                servers.tutorial_gunicorn(layout, "c1-gunicorn", linear, tuning, free_port()),
                linear,
            )
        )
        if with_mlserver:
            for key, options in (
                ("c1-mlserver-defaults", {}),
                ("c1-mlserver-pw0", {"debug": False, "parallel_workers": 0}),
                ("c1-mlserver-pw2", {"debug": False, "parallel_workers": 2}),
            ):
                server = servers.mlserver(layout, key, linear, free_port(), **options)  # type: ignore[arg-type]
                rows.append(add("c1-mlserver", server, linear))
        rows.append(hello_row)
        if have_granian:
            rows.append(hello_granian_row)
        cases.append(
            Case(
                title="Case 1: the tutorial's LinearRegression, one row per request",
                about='Body `{"x": 1, "y": 2}` (MLServer: the same row as a V2 tensor). '
                "The model costs microseconds, so this measures each server's own overhead. "
                "MLServer's adaptive batching is left out here: "
                "it can only add waiting to a model this cheap.",
                reference="c1-flaskserve",
                rows=rows,
            )
        )
    if "2" in args.cases:
        forest = trained["forest"]
        rows = []
        if have_flaskserve and have_batching:
            rows.append(
                add(
                    "c2-batched",
                    servers.flaskserve(
                        layout, "c2-batched", forest, tuning, free_port(), flags=flags, batching=True
                    ),
                    forest,
                )
            )
        else:
            why = "flaskserve serve" if not have_flaskserve else "`--max-batch-size`/`--max-batch-delay`"
            rows.append(absent("flaskserve", f"not measured: {why} not available"))
        if have_flaskserve:
            rows.append(
                add(
                    "c2-unbatched",
                    servers.flaskserve(layout, "c2-unbatched", forest, tuning, free_port(), flags=flags),
                    forest,
                )
            )
        if have_granian and have_batching:
            for key, batching in (("c2-batched-granian", True), ("c2-unbatched-granian", False)):
                server = servers.flaskserve(
                    layout, key, forest, tuning, free_port(), flags=flags, batching=batching, granian=True
                )
                rows.append(add(key, server, forest))
        rows.append(
            add(
                "c2-gunicorn",
                servers.tutorial_gunicorn(layout, "c2-gunicorn", forest, tuning, free_port()),
                forest,
            )
        )
        if with_mlserver:
            batch = (tuning.max_batch_size, tuning.max_batch_delay_ms / 1000)
            for key, options, role in (
                ("c2-mlserver-pw0-batch", {"parallel_workers": 0, "batch": batch}, "c2-mlserver-batched"),
                ("c2-mlserver-pw2-batch", {"parallel_workers": 2, "batch": batch}, "c2-mlserver-batched"),
                ("c2-mlserver-pw0", {"parallel_workers": 0}, "c2-mlserver"),
                ("c2-mlserver-pw2", {"parallel_workers": 2}, "c2-mlserver"),
            ):
                server = servers.mlserver(layout, key, forest, free_port(), debug=False, **options)  # type: ignore[arg-type]
                rows.append(add(role, server, forest))
        cases.append(
            Case(
                title="Case 2: RandomForestRegressor, one row per request",
                about='Body: the 20 features by name, `{"x0": …, "x19": …}` (MLServer: a V2 tensor). '
                "Here the model dominates, so what matters is how many rows each `predict` call gets: "
                "batching servers merge concurrent requests into one call. "
                "Ratios are against batched flaskserve.",
                reference="c2-batched" if have_batching else "c2-unbatched",
                rows=rows,
            )
        )
    if "3" in args.cases:
        forest = trained["forest"]
        rows = []
        if have_flaskserve and have_cache:
            rows.append(
                add(
                    "c3-cache",
                    servers.flaskserve(
                        layout, "c3-cache", forest, tuning, free_port(), flags=flags, cache=True
                    ),
                    forest,
                )
            )
        else:
            why = "flaskserve serve" if not have_flaskserve else "`--cache-size`"
            rows.append(absent("flaskserve", f"not measured: {why} not available"))
        if have_granian and have_cache:
            server = servers.flaskserve(
                layout, "c3-cache-granian", forest, tuning, free_port(), flags=flags, cache=True, granian=True
            )
            rows.append(add("c3-cache-granian", server, forest))
        if "2" in args.cases and have_flaskserve:
            rows.append(Row("c2-unbatched", "flaskserve", "same as case 2, cache off"))
        rows.append(hello_row)
        if have_granian:
            rows.append(hello_granian_row)
        cases.append(
            Case(
                title="Case 3: repeated identical requests (cache hits)",
                about="The case 2 forest and body, sent again and again, so after the first request every "
                "answer can come from flaskserve's response cache. The hello-world row is the ceiling.",
                reference="c3-cache",
                rows=rows,
            )
        )
    if not have_flaskserve:
        notes.append("`flaskserve serve` was not available when this ran, so only the peers were measured.")
    elif not have_batching or not have_cache:
        missing = [name for name, ok in (("batching", have_batching), ("cache", have_cache)) if not ok]
        notes.append(
            f"flaskserve had no flags for {' and '.join(missing)} when this ran; those rows are absent."
        )
    return targets, cases, keys, notes


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started_at = time.monotonic()
    try:
        wrk = load.find_wrk()
    except load.LoadError as error:
        say(f"error: {error}")
        return 2
    with_mlserver = not args.skip_mlserver and bool(args.cases & {"1", "2"})
    if with_mlserver and not (MLSERVER_VENV / "bin" / "mlserver").exists():
        say(
            "error: MLServer's virtualenv is missing; create it with `bench/setup_peers.sh` "
            "(or pass --skip-mlserver)"
        )
        return 2
    flags = servers.flaskserve_flags(REPO / ".venv" / "bin" / "flaskserve")
    if not all(flag in flags for flag in servers.FLASKSERVE_REQUIRED_FLAGS):
        missing = [flag for flag in servers.FLASKSERVE_REQUIRED_FLAGS if flag not in flags]
        say(f"warning: `flaskserve serve` is missing or lacks {' '.join(missing)}; measuring the peers only")
    tuning = Tuning(args.workers, args.threads, args.max_batch_size, args.max_batch_delay, args.cache_size)

    with ExitStack() as stack:
        scratch = Path(tempfile.mkdtemp(prefix="flaskserve-bench-"))
        if args.keep_scratch:
            say(f"scratch folder (kept): {scratch}")
        else:
            stack.callback(shutil.rmtree, scratch, ignore_errors=True)
        logs = scratch / "logs"
        logs.mkdir()
        layout = Layout(REPO, Path(sys.executable).parent, MLSERVER_VENV / "bin", scratch)

        say("training models")
        trained = {"linear": models.train_linear(scratch), "forest": models.train_forest(scratch)}
        if "memory" in args.cases:
            trained["large"] = models.train_large_forest(scratch)

        say("timing model.predict in process")
        floors = []
        for name, sizes in (("linear", (1, 64)), ("forest", sorted({1, 64, args.max_batch_size}))):
            for rows in sizes:
                floors.append(
                    Floor(
                        trained[name].description.split(",")[0],
                        rows,
                        models.predict_seconds(trained[name], rows),
                    )
                )
        full_batch = next(
            (
                f.seconds * 1000
                for f in floors
                if f.model.startswith("RandomForest") and f.rows == args.max_batch_size
            ),
            None,
        )

        targets, cases, keys, notes = build_lineup(args, layout, tuning, flags, trained, with_mlserver)
        per_run = args.duration + 0.3
        estimate = len(targets) * (args.warmup + len(args.concurrency) * args.repetitions * per_run)
        say(f"starting {len(targets)} servers; measuring takes about {estimate / 60:.0f} min")
        processes: list[ServerProcess] = []
        with running(processes):
            ready = start_servers(targets, logs, processes)
            runs, foreign, restarted = measure(ready, args, wrk, scratch, processes)
        if restarted:
            notes.append(
                "These servers stopped during the run, stopped by something outside it, and were "
                f"restarted once: {', '.join(sorted(restarted))}."
            )

        memory: list[MemoryResult] = []
        model_bytes = None
        if "memory" in args.cases:
            say("measuring memory")
            model_bytes = models.loaded_size_bytes(trained["large"])
            memory = measure_memory(layout, trained["large"], tuning, flags, wrk, logs)

        rows_by_key = {target.key: target.rows for target in targets}
        summaries = {key: summarize(found, rows_by_key[key[0]], foreign[key]) for key, found in runs.items()}
        disturbed = [value for values in foreign.values() for value in values]
        if disturbed and max(disturbed) >= OTHER_LOAD_WARNING:
            notes.append(
                f"Other processes on the machine used up to {max(disturbed):.2f} cores during some runs "
                f"(median {statistics.median(disturbed):.2f}); rows marked † had a run with more than "
                f"{OTHER_LOAD_WARNING:g} cores of such load."
            )

        def lookup(key: str, concurrency: int) -> Summary | None:
            return summaries.get((key, concurrency))

        goals = Goals(
            args.concurrency, args.max_batch_size, args.max_batch_delay, full_batch, model_bytes, memory
        )
        checks = check_targets(lookup, keys, goals)

        versions = package_versions(Path(sys.executable), MAIN_PACKAGES)
        versions["flaskserve"] = f"{versions.get('flaskserve', 'not installed')} ({flaskserve_revision()})"
        if with_mlserver:
            for name, version in package_versions(
                MLSERVER_VENV / "bin" / "python", MLSERVER_PACKAGES
            ).items():
                versions.setdefault(name, version)
                if versions[name] != version:
                    versions[f"{name} (MLServer's virtualenv)"] = version
        versions["wrk"] = load.wrk_version(wrk)

        invocation = ".venv/bin/python bench/run.py" + "".join(
            f" {arg}" for arg in (argv if argv is not None else sys.argv[1:])
        )
        sample = next((t for t in targets if t.model is not None), targets[0])
        commands = [(f"{t.server.name}, {t.server.settings}", t.server.command(layout)) for t in targets]
        commands.append(
            (
                "wrk, for each server and concurrency C",
                layout.display(
                    f"BENCH_BODY_FILE=$BENCH_TMP/{sample.key}.json "
                    + " ".join(load.command("wrk", sample.url, 0, args.duration)).replace(
                        "--connections 0", "--connections C"
                    )
                ),
            )
        )
        elapsed = time.monotonic() - started_at
        context = Context(
            title_note=(
                f"Measured {datetime.now(timezone.utc):%Y-%m-%d} with {args.repetitions} repetition(s) of "
                f"{args.duration:g} s per server and concurrency; the whole run took {elapsed / 60:.1f} min."
            ),
            invocation=".venv/bin/python bench/run.py",
            parameters=[
                ("command", f"`{layout.display(invocation)}`"),
                (
                    "wrk run",
                    f"{args.duration:g} s, 1 wrk thread, after {args.warmup:g} s of warm-up per server",
                ),
                ("repetitions", str(args.repetitions)),
                ("concurrency", ", ".join(map(str, args.concurrency))),
                ("workers, threads", f"{tuning.workers} x {tuning.threads} (flaskserve and gunicorn rows)"),
                ("batching", f"{tuning.max_batch_size} rows, {tuning.max_batch_delay_ms:g} ms"),
                ("cache", f"{tuning.cache_size} entries (case 3 only)"),
            ],
            machine=machine(),
            versions=sorted(versions.items()),
            models=[(model.name, model.description) for model in trained.values()],
            commands=commands,
            notes=notes,
        )
        text = render(
            context,
            cases,
            args.concurrency,
            summaries,
            checks,
            floors,
            memory,
            model_bytes,
            OTHER_LOAD_WARNING,
        )

    say("")
    say(text)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (args.results_dir / f"{stamp}.md").write_text(text)
    raw = {f"{key}@{c}": [dataclasses.asdict(run) for run in found] for (key, c), found in runs.items()}
    (args.results_dir / f"{stamp}.json").write_text(json.dumps(raw, indent=1) + "\n")
    say(f"wrote {args.results_dir / stamp}.md and .json")
    if args.output:
        args.output.write_text(text)
        say(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
