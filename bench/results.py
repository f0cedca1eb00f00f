"""What a benchmark run produced: the raw wrk runs, their medians, and the memory figures.

Raw wrk runs are kept per (server, concurrency) across repetitions in :class:`Measurements`; a
:class:`Summary` is their median, which shrugs off one repetition disturbed by something else
on the machine.  The spread (max - min over median) is kept beside it so a reader can tell a
real gap from noise.  The raw runs are saved next to the report, so a figure can be traced back
to the runs it came from.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from load import LoadRun

# Cores used by other processes during a run above which the run is flagged as disturbed.
OTHER_LOAD_WARNING = 0.1

#: A target's key and the concurrency it ran at.
RunKey = tuple[str, int]


@dataclass(frozen=True)
class Summary:
    """The medians of one server's runs at one concurrency."""

    requests_per_second: float
    rows_per_second: float
    p50_ms: float
    p99_ms: float
    spread: float
    repetitions: int
    errors: int
    other_load: float


def summarize(runs: Sequence[LoadRun], rows_per_request: int, other_load: Sequence[float] = ()) -> Summary:
    """Medians over ``runs``; ``other_load`` is the cores used by unrelated processes per run."""
    rates = [run.requests_per_second for run in runs]
    median_rate = statistics.median(rates)
    return Summary(
        requests_per_second=median_rate,
        rows_per_second=median_rate * rows_per_request,
        p50_ms=statistics.median(run.p50_ms for run in runs),
        p99_ms=statistics.median(run.p99_ms for run in runs),
        spread=(max(rates) - min(rates)) / median_rate if median_rate else 0.0,
        repetitions=len(runs),
        errors=sum(run.socket_errors + run.status_errors for run in runs),
        other_load=max(other_load, default=0.0),
    )


@dataclass
class Measurements:
    """Every wrk run that counts, per target and concurrency, and what disturbed them.

    ``other_load`` holds, run for run, the cores that processes other than the servers and wrk
    used meanwhile: on a shared machine that is the first thing to look at when a figure is odd.
    ``restarted`` names the targets that died during the run and were started again.
    """

    runs: dict[RunKey, list[LoadRun]] = field(default_factory=dict)
    other_load: dict[RunKey, list[float]] = field(default_factory=dict)
    restarted: set[str] = field(default_factory=set)
    idle_cores: float = 0.0
    """Cores the servers used together while none was under load."""

    def add(self, key: str, concurrency: int, run: LoadRun, other_load: float) -> None:
        self.runs.setdefault((key, concurrency), []).append(run)
        self.other_load.setdefault((key, concurrency), []).append(other_load)

    def summaries(self, rows_per_request: Mapping[str, int]) -> dict[RunKey, Summary]:
        """One :class:`Summary` per target and concurrency that has runs."""
        return {
            key: summarize(found, rows_per_request[key[0]], self.other_load[key])
            for key, found in self.runs.items()
        }

    def notes(self) -> list[str]:
        """What a reader should know about how undisturbed the runs were, for the report."""
        notes = []
        if self.restarted:
            notes.append(
                "These servers stopped during the run, stopped by something outside it, and were "
                f"restarted once: {', '.join(sorted(self.restarted))}."
            )
        if self.idle_cores >= OTHER_LOAD_WARNING:
            notes.append(
                f"With no request in flight, the servers of the line-up used {self.idle_cores:.2f} cores "
                "together (some peers' workers poll their queues); that CPU was taken from whichever "
                "server was being measured."
            )
        loads = [value for values in self.other_load.values() for value in values]
        if loads and max(loads) >= OTHER_LOAD_WARNING:
            notes.append(
                f"Other processes on the machine used up to {max(loads):.2f} cores during some runs "
                f"(median {statistics.median(loads):.2f}); rows marked † had a run with more than "
                f"{OTHER_LOAD_WARNING:g} cores of such load."
            )
        return notes

    def save(self, folder: Path, report: str) -> Path:
        """Writes ``report`` and the raw runs as ``<UTC time>.md`` and ``.json`` in ``folder``.

        Returns the path both share, without its suffix.
        """
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        Path(f"{stem}.md").write_text(report)
        raw = {
            f"{key}@{concurrency}": [dataclasses.asdict(run) for run in found]
            for (key, concurrency), found in self.runs.items()
        }
        Path(f"{stem}.json").write_text(json.dumps(raw, indent=1) + "\n")
        return stem


@dataclass(frozen=True)
class MemoryResult:
    """Summed memory of one server's process group, idle after a short warm-up."""

    server: str
    workers: int
    processes: int
    pss: int
    rss: int
