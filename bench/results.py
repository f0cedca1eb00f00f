"""What a benchmark run produced, reduced to medians, and the project's targets checked against it.

Raw wrk runs are kept per (server, concurrency) across repetitions; a :class:`Summary` is their
median, which shrugs off one repetition disturbed by something else on the machine.  The
spread (max - min over median) is kept beside it so a reader can tell a real gap from noise.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from load import LoadRun


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


@dataclass(frozen=True)
class MemoryResult:
    """Summed memory of one server's process group, idle after a short warm-up."""

    server: str
    workers: int
    processes: int
    pss: int
    rss: int


@dataclass(frozen=True)
class Check:
    """One target of the project, as measured: ``passed`` is None when it could not be measured."""

    case: str
    goal: str
    where: str
    measured: str
    required: str
    passed: bool | None


Lookup = Callable[[str, int], "Summary | None"]


@dataclass(frozen=True)
class Goals:
    """Everything the target checks need besides the summaries."""

    concurrencies: Sequence[int]
    max_batch_size: int
    max_batch_delay_ms: float
    full_batch_ms: float | None
    model_bytes: int | None
    memory: Sequence[MemoryResult]


def _best(lookup: Lookup, keys: Sequence[str], concurrency: int) -> Summary | None:
    found = [summary for key in keys if (summary := lookup(key, concurrency)) is not None]
    return max(found, key=lambda summary: summary.requests_per_second, default=None)


def _ratio_check(
    case: str,
    goal: str,
    concurrency: int,
    ours: Summary | None,
    theirs: Summary | None,
    minimum: float,
) -> Check:
    where = f"concurrency {concurrency}"
    if ours is None or theirs is None or not theirs.requests_per_second:
        return Check(case, goal, where, "not measured", f"≥ {minimum:g}x", None)
    ratio = ours.requests_per_second / theirs.requests_per_second
    return Check(case, goal, where, f"{ratio:.2f}x", f"≥ {minimum:g}x", ratio >= minimum)


def check_targets(lookup: Lookup, keys: Mapping[str, Sequence[str]], goals: Goals) -> list[Check]:
    """Every target from the project's benchmark issue, at every concurrency measured.

    ``keys`` names the rows each comparison uses: e.g. ``keys["c1-mlserver"]`` lists every
    MLServer configuration of case 1, and the best of them is the one flaskserve must beat.
    """
    checks: list[Check] = []

    def one(name: str) -> str | None:
        return keys[name][0] if keys.get(name) else None

    def get(name: str, concurrency: int) -> Summary | None:
        key = one(name)
        return lookup(key, concurrency) if key else None

    # Each flaskserve flavour (its default server, and granian) is held to every target, against the
    # hello-world ceiling under the same server.
    for flavour, label, hello in (
        ("", "flaskserve", "hello"),
        ("-granian", "flaskserve on granian", "hello-granian"),
    ):
        if not keys.get("c1-flaskserve" + flavour) and not keys.get("c2-batched" + flavour):
            continue
        for c in goals.concurrencies:
            ours = get("c1-flaskserve" + flavour, c)
            checks.append(
                _ratio_check(
                    "1",
                    label + " vs best MLServer",
                    c,
                    ours,
                    _best(lookup, keys.get("c1-mlserver", ()), c),
                    4,
                )
            )
            checks.append(
                _ratio_check("1", label + " vs tutorial under gunicorn", c, ours, get("c1-gunicorn", c), 1.5)
            )
            checks.append(
                _ratio_check("1", label + " vs tutorial as written", c, ours, get("c1-app-run", c), 3)
            )
            checks.append(_ratio_check("1", label + " vs hello-world ceiling", c, ours, get(hello, c), 0.6))
        for c in goals.concurrencies:
            ours = get("c2-batched" + flavour, c)
            checks.append(
                _ratio_check(
                    "2",
                    "batched " + label + " vs best MLServer with adaptive batching",
                    c,
                    ours,
                    _best(lookup, keys.get("c2-mlserver-batched", ()), c),
                    2.5,
                )
            )
            checks.append(
                _ratio_check(
                    "2",
                    "batched " + label + " vs tutorial under gunicorn",
                    c,
                    ours,
                    get("c2-gunicorn", c),
                    10,
                )
            )
            budget = (
                None if goals.full_batch_ms is None else goals.max_batch_delay_ms + goals.full_batch_ms + 20.0
            )
            required = "—" if budget is None else f"≤ {budget:.1f} ms"
            if ours is None or budget is None:
                checks.append(
                    Check(
                        "2", "batched " + label + " p99", f"concurrency {c}", "not measured", required, None
                    )
                )
            else:
                checks.append(
                    Check(
                        "2",
                        "batched " + label + " p99",
                        f"concurrency {c}",
                        f"{ours.p99_ms:.1f} ms",
                        required,
                        ours.p99_ms <= budget,
                    )
                )
        top = max(goals.concurrencies, default=None)
        if top is not None:
            checks.append(
                _ratio_check(
                    "2",
                    "batched vs unbatched " + label,
                    top,
                    get("c2-batched" + flavour, top),
                    get("c2-unbatched" + flavour, top),
                    10,
                )
            )
        for c in goals.concurrencies:
            checks.append(
                _ratio_check(
                    "3",
                    "cache hits on " + label + " vs hello-world ceiling",
                    c,
                    get("c3-cache" + flavour, c),
                    get(hello, c),
                    0.8,
                )
            )
    checks.extend(_memory_checks(goals))
    return checks


def _memory_checks(goals: Goals) -> list[Check]:
    by_workers = {result.workers: result for result in goals.memory if result.server == "flaskserve"}
    if goals.model_bytes is None or 1 not in by_workers or 4 not in by_workers:
        return [
            Check(
                "memory",
                "PSS growth per extra worker",
                "1 → 4 workers",
                "not measured",
                "< 25% of model",
                None,
            )
        ]
    growth = (by_workers[4].pss - by_workers[1].pss) / 3
    share = growth / goals.model_bytes
    return [
        Check(
            "memory",
            "PSS growth per extra worker",
            "1 → 4 workers",
            f"{growth / 2**20:.1f} MiB ({share:.0%} of model)",
            "< 25% of model",
            share < 0.25,
        )
    ]
