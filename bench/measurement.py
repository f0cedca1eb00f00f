"""The measuring phase: wrk against every target at every concurrency, on a machine kept quiet.

Targets are measured in turn, never at once, and the order rotates between rounds (one round is
one repetition at one concurrency), so that drift on the machine spreads over all servers
instead of favouring one.  Before each run the servers' own backlog is waited out, and, within
a budget of patience, so is the load of other processes; a run they disturbed anyway is tried
again and the least disturbed attempt is kept.  A target that fails is dropped from later
rounds; one that dies is restarted once.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import load
from options import Options
from process import (
    ServerError,
    ServerProcess,
    groups_cpu_seconds,
    machine_busy_seconds,
    wait_until_settled,
)
from progress import say
from results import OTHER_LOAD_WARNING, Measurements
from target import Target, bring_up

# Seconds a run costs beyond its duration: wrk's start-up, the settling wait, the parsing.
RUN_OVERHEAD = 0.3

# Cores above the servers' idle use that count as a backlog still being worked through.
IDLE_MARGIN = 0.1

# Seconds over which the servers' idle use is measured after the warm-up.
IDLE_WINDOW = 2.0


def estimate_seconds(targets: int, options: Options) -> float:
    """About how long measuring ``targets`` servers takes, for the line shown before it starts."""
    per_run = options.duration + RUN_OVERHEAD
    return targets * (options.warmup + len(options.concurrency) * options.repetitions * per_run)


class Patience:
    """Seconds the run may still spend waiting for other processes on the machine.

    One budget for the whole run, so a machine that is never quiet costs a bounded delay and the
    disturbed runs are flagged instead.
    """

    def __init__(self, seconds: float) -> None:
        self.left = seconds
        self.idle = 0.0
        """Cores the idle servers use together (some peers poll their queues), set after warm-up."""

    @property
    def lasts(self) -> bool:
        return self.left > 0

    def settle(self, groups: Sequence[int]) -> None:
        """Waits for the servers' backlog and, while patience lasts, for other processes too."""
        threshold = self.idle + IDLE_MARGIN
        if self.lasts:
            self.left -= wait_until_settled(
                groups, max_other=OTHER_LOAD_WARNING, threshold=threshold, timeout=min(10.0, self.left)
            )
        else:
            wait_until_settled(groups, max_other=float("inf"), threshold=threshold, timeout=10.0)


@dataclass(frozen=True)
class _CpuSnapshot:
    machine: float
    servers: float
    children: float

    @classmethod
    def take(cls, groups: Sequence[int]) -> _CpuSnapshot:
        # wrk is a reaped child by the time the second snapshot is taken, so its CPU time is in
        # RUSAGE_CHILDREN; the servers are still running and are read from /proc.
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(machine_busy_seconds(), groups_cpu_seconds(groups), children.ru_utime + children.ru_stime)

    def others_since(self, before: _CpuSnapshot) -> float:
        """CPU seconds spent since ``before`` by neither the servers nor wrk."""
        return (
            (self.machine - before.machine)
            - (self.servers - before.servers)
            - (self.children - before.children)
        )


def _rotation(
    repetitions: int, concurrencies: Sequence[int], alive: list[Target]
) -> Iterator[tuple[int, int, Target]]:
    """``(repetition, concurrency, target)`` in measuring order, each round starting one further.

    Each round reads ``alive`` as it starts, so a target removed from it is skipped from the
    next round on.
    """
    for repetition in range(repetitions):
        for index, concurrency in enumerate(concurrencies):
            shift = (repetition * len(concurrencies) + index) % max(len(alive), 1)
            for target in alive[shift:] + alive[:shift]:
                yield repetition, concurrency, target


def _progress_line(done: int, total: int, repetition: int, concurrency: int, target: Target) -> str:
    return f"[{done:>3}/{total}] rep {repetition + 1} c={concurrency:<3} {target.label}: "


def _outcome(result: load.LoadRun, other: float) -> str:
    errors = result.socket_errors + result.status_errors
    return (
        f"{result.requests_per_second:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
        f"p99 {result.p99_ms:.2f} ms"
        + (f", {errors} errors" if errors else "")
        + (f", other load {other:.2f} cores" if other >= OTHER_LOAD_WARNING else "")
    )


class _Session:
    """The state one measuring phase carries from run to run."""

    def __init__(
        self,
        targets: Sequence[Target],
        processes: Mapping[str, ServerProcess],
        bodies: Mapping[str, Path],
        options: Options,
        wrk: str,
    ) -> None:
        self.targets = targets
        self.processes = processes
        self.bodies = bodies
        self.options = options
        self.wrk = wrk
        # The process groups of every measured server: the ones waited on before each run and
        # whose CPU time is not counted as other load.
        self.groups = [processes[target.key].pgid for target in targets]
        self.patience = Patience(options.patience)
        self.measurements = Measurements()

    def warm_up(self) -> None:
        """Unmeasured load on every server, so that no first run pays for imports and caches."""
        say(f"warming up {len(self.targets)} servers for {self.options.warmup:g} s each")
        self.patience.idle = self.idle_cores()
        for target in self.targets:
            load.run(
                self.wrk,
                target.url,
                self.bodies[target.key],
                max(self.options.concurrency),
                self.options.warmup,
                target.headers,
            )
            wait_until_settled(
                self.groups, max_other=float("inf"), threshold=self.patience.idle + IDLE_MARGIN, timeout=10.0
            )
        self.patience.idle = self.idle_cores()
        self.measurements.idle_cores = self.patience.idle

    def idle_cores(self) -> float:
        """Cores all the servers use together with no request in flight.

        Some servers never idle (a worker pool polling its queue): without this baseline every wait
        for the backlog to clear would last until its timeout.
        """
        before = groups_cpu_seconds(self.groups)
        time.sleep(IDLE_WINDOW)
        return (groups_cpu_seconds(self.groups) - before) / IDLE_WINDOW

    def measure_all(self) -> None:
        """Every target at every concurrency, ``repetitions`` times, in rotating order."""
        options = self.options
        alive = list(self.targets)
        total = options.repetitions * len(options.concurrency) * len(self.targets)
        rounds = _rotation(options.repetitions, options.concurrency, alive)
        for done, (repetition, concurrency, target) in enumerate(rounds, start=1):
            try:
                result, other = self.run_once(target, concurrency)
            except (ServerError, load.LoadError) as error:
                say(f"  ✗ {target.label}: {error}; dropping it")
                alive.remove(target)
                continue
            self.measurements.add(target.key, concurrency, result, other)
            say(_progress_line(done, total, repetition, concurrency, target) + _outcome(result, other))

    def run_once(self, target: Target, concurrency: int) -> tuple[load.LoadRun, float]:
        """One wrk run on a settled machine, tried again if other processes disturbed it.

        Returns the run and the cores other processes used during it; of several attempts, the
        least disturbed one is kept.  Retries are only made while patience lasts.
        """
        best: tuple[load.LoadRun, float] | None = None
        attempts = 1 + (self.options.retries if self.patience.lasts else 0)
        for _ in range(attempts):
            self._restart_if_dead(target)
            self.patience.settle(self.groups)
            result, other = self._timed_run(target, concurrency)
            if best is None or other < best[1]:
                best = (result, other)
            if other < OTHER_LOAD_WARNING:
                break
        assert best is not None
        return best

    def _restart_if_dead(self, target: Target) -> None:
        process = self.processes[target.key]
        try:
            process.check_alive()
        except ServerError as error:
            # Something outside the benchmark may stop a server (a clean-up that kills by
            # name); one restart keeps the line-up whole, and the report says it happened.
            say(f"  ! {target.label} died; restarting it once\n{error}")
            if target.key in self.measurements.restarted:
                raise
            self.measurements.restarted.add(target.key)
            old_group = process.pgid
            process.stop()
            process.start()
            bring_up(target, process)
            self.groups[self.groups.index(old_group)] = process.pgid

    def _timed_run(self, target: Target, concurrency: int) -> tuple[load.LoadRun, float]:
        """One wrk run, and the cores that neither the servers nor wrk used meanwhile."""
        before = _CpuSnapshot.take(self.groups)
        result = load.run(
            self.wrk, target.url, self.bodies[target.key], concurrency, self.options.duration, target.headers
        )
        other = _CpuSnapshot.take(self.groups).others_since(before) / max(result.seconds, 1e-9)
        return result, other


def _write_bodies(targets: Sequence[Target], scratch: Path) -> dict[str, Path]:
    """Each target's request body in ``scratch/<key>.json``, the file wrk's script sends."""
    bodies = {}
    for target in targets:
        path = scratch / f"{target.key}.json"
        path.write_bytes(target.body)
        bodies[target.key] = path
    return bodies


def measure(
    targets: Sequence[Target],
    options: Options,
    wrk: str,
    scratch: Path,
    processes: Sequence[ServerProcess],
) -> Measurements:
    """Warms every target up, then measures them all; ``processes`` are their running servers."""
    by_key = {process.name: process for process in processes}
    session = _Session(targets, by_key, _write_bodies(targets, scratch), options, wrk)
    session.warm_up()
    session.measure_all()
    restarted = session.measurements.restarted
    if restarted:
        say(f"restarted during the run: {', '.join(sorted(restarted))}")
    return session.measurements
