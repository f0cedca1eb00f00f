"""The availability harness: models rolled out, broken, pinned, keys revoked, the server reloaded, under load.

    python tests/reliability/availability.py --server gunicorn --server granian \\
        --update-doc docs/operations.md

A real ``flaskserve serve --watch`` with two workers takes a closed loop of
clients, spread over every protocol (simple ``/predict``, V2 infer, V1
``:predict``, MLflow ``/invocations``), each request unversioned, while the
steps below run one after another. The clients are lean kept-alive HTTP/1.1
connections in a process of their own (traffic_clients.py), so that the server,
not the clients, limits how many requests are sent. Every request is recorded
with when it started and ended, its status and the model version that answered
(``X-Model-Version``), so each step's failures, p99 latency and convergence are
read from the requests of its own time window. The server's processes' resident
memory is sampled all along.

=============  ===========================================================================
baseline       plain traffic, the p99 the other steps are compared with
rollout        ``flaskserve publish`` of N new versions, one after another, each awaited
corrupt        a garbage model file dropped in place as a new version: must never serve
slow copy      a valid model written in place over a few seconds: must serve only once whole
pin            ``[versions] specific`` names an old version, then the pin is removed
revoke         an API key revoked with the key file rewritten: refused after one interval
hup            ``SIGHUP`` to the master, a few times
kills          (long form) the longest-running worker ``SIGKILL``\\ ed every second: only the
               requests in flight on it may fail (kill_forensics.py tells which did)
=============  ===========================================================================

``--step NAME`` (repeatable) runs the baseline and the steps named, e.g. ``--step kills``.

"Converged" is the time from the file landing (or the signal) until the last
answer from the version before, among requests started after it: when every
worker answers with the new one. :func:`run` returns the steps; the CI test
(``test_availability.py``) runs a short form and asserts zero failed requests.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import json
import math
import os
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from kill_forensics import Attribution, Kill, Sent, attribute, kill
from soak import doc_markers
from soak import update_doc as write_block
from traffic_clients import ClientProcess, Orders, Record, encode_post, read_batch

#: One row through each protocol; every request names no version, so it gets the newest served.
PROTOCOL_REQUESTS: list[tuple[str, Any]] = [
    ("/predict", {"x": 0.5, "y": 0.5}),
    (
        "/v2/models/linear/infer",
        {"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [0.5, 0.5]}]},
    ),
    ("/v1/models/linear:predict", {"instances": [[0.5, 0.5]]}),
    ("/invocations", {"dataframe_split": {"columns": ["x", "y"], "data": [[0.5, 0.5]]}}),
]
REQUEST_TIMEOUT_S = 10.0
SECTION = "## Measured availability"
TAG = "availability"


class Traffic:
    """A closed loop of ``clients``, bounded by ``max_seconds`` and ``max_requests``, in a process apart.

    The clients run outside the harness's process (traffic_clients.py), so that
    they do not fight the harness for its interpreter lock; their records arrive
    as they go, for :meth:`since` to read during the run.
    """

    def __init__(self, url: str, key: str, clients: int, max_seconds: float, max_requests: int) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self._orders = Orders(
            host,
            int(port),
            [
                encode_post(f"{host}:{port}", path, json.dumps(body).encode(), {"X-API-Key": key})
                for path, body in PROTOCOL_REQUESTS
            ],
            clients,
            time.monotonic() + max_seconds,
            max_requests,
            REQUEST_TIMEOUT_S,
        )
        self._lock = threading.Lock()
        self.records: list[Record] = []
        #: When each batch of records arrived, and where it begins in ``records``: a batch that arrived
        #: before a moment holds no request started after it.
        self._arrived: list[float] = []
        self._batch_starts: list[int] = []
        self._reader = threading.Thread(target=self._receive, daemon=True)

    def __enter__(self) -> Traffic:
        self._process = ClientProcess(self._orders)
        self._reader.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._process.stop()
        self._process.wait(REQUEST_TIMEOUT_S + 5)
        self._reader.join(5)
        self._process.records.close()

    def _receive(self) -> None:
        while (batch := read_batch(self._process.records)) is not None:
            with self._lock:
                self._arrived.append(time.monotonic())
                self._batch_starts.append(len(self.records))
                self.records.extend(batch)

    def since(self, moment: float) -> list[Record]:
        with self._lock:
            first = bisect.bisect_left(self._arrived, moment)
            start = self._batch_starts[first] if first < len(self._batch_starts) else len(self.records)
            return [r for r in self.records[start:] if r.started >= moment]


class MemorySampler:
    """The summed resident memory (kB) of the server's master and workers, sampled every 0.1 s."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self._pids = pids
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.samples.append((time.monotonic(), sum(_rss_kb(pid) for pid in self._pids())))

    def peak_mb(self, start: float, end: float) -> float:
        inside = [kb for at, kb in self.samples if start <= at <= end]
        return max(inside, default=0) / 1024


def _start_ticks(pid: int) -> int:
    """When ``pid`` started, in clock ticks since boot (``/proc/PID/stat``)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Step:
    name: str
    started: float
    ended: float = 0.0
    #: Seconds from each change landing to every worker answering with it.
    converged_s: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    peak_mb: float = 0.0
    #: The kills step's: each worker killed, and what its connections held.
    kills: list[Kill] = field(default_factory=list)

    def attribution(self) -> Attribution:
        sent = [Sent(r.started, r.ended, r.outcome, r.port, r.new_connection) for r in self.records]
        return attribute(sent, self.kills)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.records if r.outcome != "200")

    @property
    def outcomes(self) -> Counter[str]:
        return Counter(r.outcome for r in self.records)

    def p99_ms(self) -> float:
        latencies = sorted(r.ended - r.started for r in self.records)
        if not latencies:
            return math.nan
        return latencies[max(0, math.ceil(0.99 * len(latencies)) - 1)] * 1000


STEPS = ("baseline", "rollout", "corrupt", "slow copy", "pin", "revoke", "hup", "kills")


@dataclass(frozen=True)
class Plan:
    """How much of each step: the CI form is short, ``make availability`` the long one."""

    #: The steps to run, in their fixed order (the baseline always runs: the others' p99 is compared with it).
    steps: tuple[str, ...] = STEPS
    rollouts: int = 10
    slow_copy_s: float = 3.0
    hups: int = 3
    kill_seconds: float = 10.0
    baseline_s: float = 3.0
    interval_s: float = 2.0
    clients: int = 8


SHORT = Plan(rollouts=2, slow_copy_s=1.5, hups=1, kill_seconds=0.0, baseline_s=1.0, interval_s=0.5, clients=4)


class Harness:
    """Runs the steps against one server, whose repository folder is ``models`` and keys ``keys_file``."""

    def __init__(self, url: str, master_pid: int, models: Path, keys_file: Path, plan: Plan) -> None:
        self.url = url
        self.master_pid = master_pid
        self.models = models
        self.keys_file = keys_file
        self.plan = plan
        self.steps: list[Step] = []
        self.newest = 1

    # -- steps --------------------------------------------------------------------

    def run(self, traffic: Traffic, admin_key: str, revoked_key: str) -> list[Step]:
        self._traffic = traffic
        self._admin = {"X-API-Key": admin_key}
        # A warm-up, not counted: each worker's first requests pay for lazy imports and kernels.
        time.sleep(self.plan.baseline_s)
        with self._step("baseline"):
            time.sleep(self.plan.baseline_s)
        if "rollout" in self.plan.steps:
            with self._step("rollout") as step:
                for _ in range(self.plan.rollouts):
                    self._publish_next(step)
        if "corrupt" in self.plan.steps:
            with self._step("corrupt") as step:
                self._drop_corrupt(step)
        if "slow copy" in self.plan.steps:
            with self._step("slow copy") as step:
                self._copy_slowly(step)
        if "pin" in self.plan.steps:
            with self._step("pin") as step:
                self._pin_and_unpin(step)
        if "revoke" in self.plan.steps:
            with self._step("revoke") as step:
                self._revoke(step, revoked_key)
        if "hup" in self.plan.steps:
            with self._step("hup") as step:
                for _ in range(self.plan.hups):
                    landed = time.monotonic()
                    os.kill(self.master_pid, signal.SIGHUP)
                    time.sleep(max(2.0, 4 * self.plan.interval_s))
                    step.notes.append(f"served v{self._answering(landed)} after")
        if "kills" in self.plan.steps and self.plan.kill_seconds:
            with self._step("kills") as step:
                self._kill_workers(step)
        return self.steps

    def _publish_next(self, step: Step) -> None:
        from flaskserve.lifecycle.publish import publish
        from flaskserve.models.loaders import default_loaders

        version = self.newest + 1
        model_file = self._trained(version)
        landed = time.monotonic()
        publish(model_file, self.models / "linear", default_loaders(), version=version)
        self._await(step, str(version), landed)
        self.newest = version

    def _drop_corrupt(self, step: Step) -> None:
        folder = self.models / "linear" / str(self.newest + 1)
        folder.mkdir()
        (folder / "model.skops").write_bytes(b"PK\x03\x04" + os.urandom(2048))
        time.sleep(4 * self.plan.interval_s)
        state = self._index_row(folder.name)
        step.notes.append(f"index: {state}")
        served = sum(1 for r in self._traffic.since(step.started) if r.version == folder.name)
        step.notes.append(f"answers from the corrupt version: {served}")
        shutil.rmtree(folder)
        time.sleep(2 * self.plan.interval_s)

    def _copy_slowly(self, step: Step) -> None:
        version = self.newest + 1
        data = self._trained(version).read_bytes()
        target = self.models / "linear" / str(version) / "model.skops"
        target.parent.mkdir()
        chunks = 20
        landed = time.monotonic()
        with target.open("wb") as stream:
            for n in range(chunks):
                stream.write(data[n * len(data) // chunks : (n + 1) * len(data) // chunks])
                stream.flush()
                time.sleep(self.plan.slow_copy_s / chunks)
        whole = time.monotonic()
        early = sum(1 for r in self._traffic.since(landed) if r.version == str(version) and r.started < whole)
        step.notes.append(f"answers from it before the copy ended: {early}")
        self._await(step, str(version), whole)
        self.newest = version

    def _pin_and_unpin(self, step: Step) -> None:
        settings = self.models / "linear" / "model-settings.toml"
        landed = time.monotonic()
        settings.write_text('[versions]\nspecific = ["2"]\n', encoding="utf-8")
        self._await(step, "2", landed)
        landed = time.monotonic()
        settings.unlink()
        self._await(step, str(self.newest), landed)

    def _revoke(self, step: Step, key: str) -> None:
        from flaskserve.security.keys import KeyStore

        store = KeyStore.load(self.keys_file)
        store.revoke("leaked")
        landed = time.monotonic()
        store.save()
        deadline = landed + 10 * self.plan.interval_s + 10
        with requests.Session() as probe:
            while time.monotonic() < deadline:
                status = probe.post(
                    self.url + "/predict", json={"x": 0, "y": 0}, headers={"X-API-Key": key}
                ).status_code
                if status == 401:
                    step.converged_s.append(time.monotonic() - landed)
                    return
                time.sleep(0.02)
        step.notes.append("the revoked key was still accepted")

    def _kill_workers(self, step: Step) -> None:
        """``SIGKILL`` to the longest-running worker every second: one that was serving, never a booting one.

        What the victim held is read just before the kill (kill_forensics).
        """
        from live_server import children

        port = int(self.url.rsplit(":", 1)[1])
        started = time.monotonic()
        for second in range(math.ceil(self.plan.kill_seconds)):
            time.sleep(max(0.0, started + second - time.monotonic()))
            workers = children(self.master_pid)
            if workers:
                victim = min(workers, key=_start_ticks)
                step.kills.append(kill(victim, port, lambda: children(self.master_pid)))
        time.sleep(2.0)

    # -- helpers ------------------------------------------------------------------

    class _StepScope:
        def __init__(self, harness: Harness, name: str) -> None:
            self.harness, self.step = harness, Step(name, time.monotonic())

        def __enter__(self) -> Step:
            return self.step

        def __exit__(self, *_: object) -> None:
            self.step.ended = time.monotonic()
            self.harness.steps.append(self.step)

    def _step(self, name: str) -> Harness._StepScope:
        return Harness._StepScope(self, name)

    def _trained(self, version: int) -> Path:
        from flaskserve import testing

        path = self.models.parent / "trained" / f"v{version}" / "model.skops"
        return testing.save_model(testing.train_constant(float(version)), path)

    def _await(self, step: Step, version: str, landed: float) -> None:
        """Wait for 40 answers in a row, started after ``landed``, from ``version``; note how long it took."""
        deadline = landed + 20 * self.plan.interval_s + 20
        while time.monotonic() < deadline:
            recent = [r for r in self._traffic.since(landed) if r.outcome == "200"]
            tail = recent[-40:]
            if len(tail) == 40 and all(r.version == version for r in tail):
                stale = [r.ended for r in recent if r.version != version]
                step.converged_s.append(max(stale, default=landed) - landed)
                return
            time.sleep(0.05)
        step.notes.append(f"v{version} was not answering everywhere after {deadline - landed:.0f} s")

    def _answering(self, since: float) -> str:
        versions = Counter(r.version for r in self._traffic.since(since) if r.version)
        return versions.most_common(1)[0][0] if versions else "?"

    def _index_row(self, version: str) -> str:
        rows = requests.post(self.url + "/v2/repository/index", headers=self._admin, timeout=5).json()
        for row in rows:
            if row["name"] == "linear" and row.get("version") == version:
                return f"{row['state']} ({row.get('reason', '')[:60]})"
        return "absent"


def run(server_name: str, workdir: Path, plan: Plan) -> list[Step]:
    """Start ``flaskserve serve --watch`` under ``server_name`` in ``workdir``, run every step, stop it."""
    from flaskserve import testing
    from flaskserve.security.keys import KeyStore
    from live_server import ServerLauncher, children

    models = workdir / "models"
    testing.save_model(testing.train_constant(1.0), models / "linear" / "1" / "model.skops")
    keys_file = workdir / "keys.json"
    store = KeyStore.load(keys_file)
    admin_key, revoked_key = store.create("load", ["admin"]), store.create("leaked", ["predict"])
    store.save()
    launcher = ServerLauncher(models, workdir / "server")
    try:
        server = launcher.start(
            "--server",
            server_name,
            "--watch",
            "--watch-interval",
            str(plan.interval_s),
            "--keys-file",
            str(keys_file),
            workers=2,
        )
        server.worker_pids(2)
        harness = Harness(server.url, server.process.pid, models, keys_file, plan)
        budget_s = 120 + plan.rollouts * 20 + plan.kill_seconds
        with (
            MemorySampler(lambda: [server.process.pid, *children(server.process.pid)]) as memory,
            Traffic(server.url, admin_key, plan.clients, budget_s, 2_000_000) as traffic,
        ):
            steps = harness.run(traffic, admin_key, revoked_key)
        for step in steps:
            step.records = [r for r in traffic.records if step.started <= r.started < step.ended]
            step.peak_mb = memory.peak_mb(step.started, step.ended)
    finally:
        launcher.stop_all()
    return steps


# -------------------------------------------------------------------------------------- report


def table(steps: list[Step]) -> str:
    baseline = next((s.p99_ms() for s in steps if s.name == "baseline"), math.nan)
    lines = [
        "| step | requests | failed | converged (median / max) | p99 | p99 vs baseline | peak RSS | notes |",
        "|---|---:|---:|---|---:|---:|---:|---|",
    ]
    for step in steps:
        converged = step.converged_s
        when = f"{statistics.median(converged):.2f} s / {max(converged):.2f} s" if converged else "-"
        share = f"{step.failed} ({step.failed / max(1, len(step.records)):.2%})"
        ratio = step.p99_ms() / baseline if baseline else math.nan
        failures = {outcome: n for outcome, n in sorted(step.outcomes.items()) if outcome != "200"}
        notes = [*step.notes, *([f"failed as {failures}"] if failures else [])]
        if step.kills:
            notes = [*step.notes, step.attribution().summary()]
        lines.append(
            f"| {step.name} | {len(step.records)} | {share} | {when} | {step.p99_ms():.1f} ms | "
            f"{ratio:.1f}x | {step.peak_mb:.0f} MB | {'; '.join(notes)} |"
        )
    return "\n".join(lines)


def update_doc(path: Path, server: str, block: str) -> None:
    """Replace ``server``'s block in ``path``, or add it at the end of the measured section."""
    write_block(path, server, block, section=SECTION, tag=TAG)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", action="append", choices=["gunicorn", "granian"])
    parser.add_argument("--short", action="store_true", help="the CI form")
    parser.add_argument("--hups", type=int, help="how many SIGHUPs the hup step sends (default 3)")
    parser.add_argument(
        "--step",
        action="append",
        choices=STEPS[1:],
        help="run only this step (repeatable; the baseline always runs); default: every step",
    )
    parser.add_argument("--update-doc", type=Path)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    plan = SHORT if args.short else Plan()
    if args.hups is not None:
        plan = dataclasses.replace(plan, hups=args.hups)
    if args.step:
        plan = dataclasses.replace(plan, steps=("baseline", *args.step))
    command = "python tests/reliability/availability.py " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )
    failed = False
    for server_name in args.server or ["gunicorn"]:
        with tempfile.TemporaryDirectory(prefix="availability-") as scratch:
            load = os.getloadavg()[0]
            steps = run(server_name, Path(scratch), plan)
        report = table(steps)
        print(f"\n{server_name}\n{report}\n", flush=True)
        # A kill may fail the requests in flight on the killed worker, and no other.
        failed |= any(s.attribution().stray if s.kills else s.failed for s in steps)
        if args.update_doc:
            start, end = doc_markers(server_name, TAG)
            block = (
                f"{start}\n**{server_name}**, two workers, {plan.clients} clients, watch interval "
                f"{plan.interval_s:g} s; `{command}`; load average {load:.1f} at the start (a shared, busy "
                f"2-core machine).\n\n{report}\n{end}"
            )
            update_doc(args.update_doc, server_name, block)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
