"""The project's performance targets, and a run's summaries checked against them.

Most targets compare a flaskserve row with a peer: flaskserve's requests/s over the peer's
must reach a minimum.  One bounds the batched p99 latency, one the memory each extra worker
costs.  The targets are the tables below, in the order the report lists them.  Every flaskserve
flavour (its default server, and granian) is held to each, against the hello-world ceiling
under the same server.  A target whose rows were not measured is reported as such
(``passed`` is None), never as a pass or a miss.

Rows are named by *role* (see :mod:`lineup`): ``c1-peers`` stands for every peer configuration
of case 1 (MLServer, LitServe, BentoML), and the best of them is the one flaskserve must beat.  In the tables,
``{flavour}`` in a role and ``{label}`` in a goal's wording stand for the flavour's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from results import MemoryResult, Summary

Lookup = Callable[[str, int], "Summary | None"]


@dataclass(frozen=True)
class Check:
    """One target of the project, as measured: ``passed`` is None when it could not be measured."""

    case: str
    goal: str
    where: str
    measured: str
    required: str
    passed: bool | None


@dataclass(frozen=True)
class Goals:
    """Everything the target checks need besides the summaries."""

    concurrencies: Sequence[int]
    max_batch_size: int
    max_batch_delay_ms: float
    full_batch_ms: float | None
    model_bytes: int | None
    memory: Sequence[MemoryResult]


@dataclass(frozen=True)
class Flavour:
    """flaskserve on one WSGI server: the suffix its roles carry and the name the report uses."""

    suffix: str
    label: str


FLAVOURS = (Flavour("", "flaskserve"), Flavour("-granian", "flaskserve on granian"))

# The batched p99 target allows this much beyond waiting for a batch and predicting a full one.
P99_ALLOWANCE_MS = 20.0


class _Rows:
    """The summaries of one run, looked up by role on behalf of one flavour."""

    def __init__(self, lookup: Lookup, roles: Mapping[str, Sequence[str]], flavour: Flavour) -> None:
        self.lookup = lookup
        self.roles = roles
        self.flavour = flavour

    def words(self, template: str) -> str:
        return template.format(flavour=self.flavour.suffix, label=self.flavour.label)

    def one(self, role: str, concurrency: int) -> Summary | None:
        """The first row of ``role``, usually its only one."""
        keys = self.roles.get(self.words(role))
        return self.lookup(keys[0], concurrency) if keys else None

    def best(self, role: str, concurrency: int) -> Summary | None:
        """The fastest row of ``role``, the one to beat when several configurations compete."""
        found = [
            summary
            for key in self.roles.get(self.words(role), ())
            if (summary := self.lookup(key, concurrency)) is not None
        ]
        return max(found, key=lambda summary: summary.requests_per_second, default=None)


@dataclass(frozen=True)
class Ratio:
    """``ours`` must serve at least ``minimum`` times the requests/s of ``theirs``."""

    case: str
    goal: str
    ours: str
    theirs: str
    minimum: float
    best_of_theirs: bool = False
    """``theirs`` names several configurations, and the fastest of them counts."""

    def check(self, rows: _Rows, concurrency: int, goals: Goals) -> Check:
        ours = rows.one(self.ours, concurrency)
        theirs = (rows.best if self.best_of_theirs else rows.one)(self.theirs, concurrency)
        where = f"concurrency {concurrency}"
        required = f"≥ {self.minimum:g}x"
        if ours is None or theirs is None or not theirs.requests_per_second:
            return Check(self.case, rows.words(self.goal), where, "not measured", required, None)
        ratio = ours.requests_per_second / theirs.requests_per_second
        return Check(
            self.case, rows.words(self.goal), where, f"{ratio:.2f}x", required, ratio >= self.minimum
        )


@dataclass(frozen=True)
class BatchedP99:
    """``ours`` answers within the batching delay, one full-batch predict, and an allowance."""

    case: str
    goal: str
    ours: str

    def check(self, rows: _Rows, concurrency: int, goals: Goals) -> Check:
        ours = rows.one(self.ours, concurrency)
        budget = (
            None
            if goals.full_batch_ms is None
            else goals.max_batch_delay_ms + goals.full_batch_ms + P99_ALLOWANCE_MS
        )
        where = f"concurrency {concurrency}"
        required = "—" if budget is None else f"≤ {budget:.1f} ms"
        if ours is None or budget is None:
            return Check(self.case, rows.words(self.goal), where, "not measured", required, None)
        passed = ours.p99_ms <= budget
        return Check(self.case, rows.words(self.goal), where, f"{ours.p99_ms:.1f} ms", required, passed)


@dataclass(frozen=True)
class RowsAtLeast:
    """``ours`` must serve at least ``minimum`` rows/s."""

    case: str
    goal: str
    ours: str
    minimum: float

    def check(self, rows: _Rows, concurrency: int, goals: Goals) -> Check:
        ours = rows.one(self.ours, concurrency)
        where = f"concurrency {concurrency}"
        required = f"≥ {self.minimum:,.0f} rows/s"
        if ours is None:
            return Check(self.case, rows.words(self.goal), where, "not measured", required, None)
        measured = f"{ours.rows_per_second:,.0f} rows/s"
        return Check(
            self.case, rows.words(self.goal), where, measured, required, ours.rows_per_second >= self.minimum
        )


Goal = Ratio | BatchedP99 | RowsAtLeast


@dataclass(frozen=True)
class GoalGroup:
    """Goals checked together at each concurrency in turn, or only at the highest one."""

    goals: tuple[Goal, ...]
    highest_concurrency_only: bool = False

    def concurrencies(self, measured: Sequence[int]) -> list[int]:
        if not self.highest_concurrency_only:
            return list(measured)
        return [max(measured)] if measured else []


GOAL_GROUPS = (
    GoalGroup(
        (
            Ratio(
                "1",
                "{label} vs raw-WSGI hello-world on granian",
                "c1-flaskserve{flavour}",
                "hello-granian",
                0.35,
            ),
            Ratio("1", "{label} vs the best peer", "c1-flaskserve{flavour}", "c1-peers", 10, True),
            Ratio(
                "1",
                "{label} vs Flask hello-world on the same server",
                "c1-flaskserve{flavour}",
                "flask-hello{flavour}",
                2,
            ),
            Ratio(
                "3",
                "cache hits on {label} vs raw-WSGI hello-world on granian",
                "c3-cache{flavour}",
                "hello-granian",
                0.5,
            ),
            RowsAtLeast("4", "1,000-row JSON requests on {label}", "c4-json{flavour}", 1_500_000),
            Ratio(
                "4",
                "V2 binary tensors vs 1,000-row JSON on {label}",
                "c4-binary{flavour}",
                "c4-json{flavour}",
                1,
            ),
            BatchedP99("2", "batched {label} p99", "c2-batched{flavour}"),
        )
    ),
    # The forest targets are set where most requests wait together.
    GoalGroup(
        (
            Ratio(
                "2",
                "batched {label} vs the best peer with batching",
                "c2-batched{flavour}",
                "c2-peers-batched",
                3,
                True,
            ),
            Ratio(
                "2", "batched {label} vs tutorial under gunicorn", "c2-batched{flavour}", "c2-gunicorn", 12
            ),
        ),
        highest_concurrency_only=True,
    ),
)


def check_targets(lookup: Lookup, roles: Mapping[str, Sequence[str]], goals: Goals) -> list[Check]:
    """Every target from the project's benchmark issue, at every concurrency measured.

    A flavour is checked only if the run has its case 1, 2 or 4 row; the memory target always
    appears, as not measured when the memory phase did not run.
    """
    checks: list[Check] = []
    for flavour in FLAVOURS:
        if not any(roles.get(stem + flavour.suffix) for stem in ("c1-flaskserve", "c2-batched", "c4-json")):
            continue
        rows = _Rows(lookup, roles, flavour)
        for group in GOAL_GROUPS:
            for concurrency in group.concurrencies(goals.concurrencies):
                checks += [goal.check(rows, concurrency, goals) for goal in group.goals]
    checks.append(_memory_check(goals))
    return checks


def _memory_check(goals: Goals) -> Check:
    """flaskserve's PSS grows by less than a quarter of the model per extra worker (1 → 4 workers)."""
    case, goal, where, required = "memory", "PSS growth per extra worker", "1 → 4 workers", "< 25% of model"
    by_workers = {result.workers: result for result in goals.memory if result.server == "flaskserve"}
    if goals.model_bytes is None or 1 not in by_workers or 4 not in by_workers:
        return Check(case, goal, where, "not measured", required, None)
    growth = (by_workers[4].pss - by_workers[1].pss) / 3
    share = growth / goals.model_bytes
    return Check(
        case, goal, where, f"{growth / 2**20:.1f} MiB ({share:.0%} of model)", required, share < 0.25
    )
