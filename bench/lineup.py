"""The line-up of one run: which servers are measured, in which tables, compared with which.

Each case is a function that adds its servers and returns its table; :data:`CASES` maps the
names ``--cases`` takes to them.  A row whose flaskserve feature the installed build lacks is
kept in its table as absent, with the reason, so a reader never mistakes a missing row for a
slow one.  Each measured row also gets a *role*, the name the target checks look it up by (see
:func:`goals.check_targets`); every peer configuration of a case (MLServer's two, LitServe,
BentoML) shares one role, and the best of them is the one flaskserve is held against.  The large
requests' parse floors are timed in process while the line-up is built and shown as rows of their
own (:class:`Floor`, :func:`floor_summaries`).

Targets keep the order in which they are added: it is the order servers start in, the first
order of the rotation, and the order of the commands in the report.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace

import servers
from inprocess import LARGE_ROWS, large_cases
from options import Options
from process import free_port
from report import Case, Row
from results import RunKey, Summary
from servers import Capabilities, Layout, Server, Tuning
from target import Request, Target

import models
from models import BenchModel


@dataclass(frozen=True)
class MLServerVariant:
    """One MLServer configuration: None keeps MLServer's own default for that setting."""

    key: str
    parallel_workers: int | None = None
    adaptive_batching: bool = False


# MLServer runs inference in its main process (parallel_workers 0) or in a pool of worker
# processes beside it (2, the workers every server gets here); which is faster depends on the
# model, so both are measured and the faster one counts.  Case 1 leaves adaptive batching out:
# it can only add waiting to a model that costs microseconds.
CASE_1_MLSERVER = (
    MLServerVariant("c1-mlserver-pw0", parallel_workers=0),
    MLServerVariant("c1-mlserver-pw2", parallel_workers=2),
)
CASE_2_MLSERVER = (
    MLServerVariant("c2-mlserver-pw0-batch", parallel_workers=0, adaptive_batching=True),
    MLServerVariant("c2-mlserver-pw2-batch", parallel_workers=2, adaptive_batching=True),
)


@dataclass(frozen=True)
class Floor:
    """A row measured in process rather than over HTTP: the parse floor of a large request."""

    key: str
    seconds: float
    """Per request."""
    rows: int


@dataclass
class Lineup:
    """The targets to run, the tables they form, the rows each target check compares, and notes."""

    targets: list[Target] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    roles: dict[str, list[str]] = field(default_factory=dict)
    """Target keys by role, the names :func:`goals.check_targets` looks rows up by."""
    notes: list[str] = field(default_factory=list)
    floors: list[Floor] = field(default_factory=list)
    """In-process rows shown beside the measured ones, as their ceiling."""

    @property
    def rows_per_request(self) -> dict[str, int]:
        return {target.key: target.rows for target in self.targets}


class _Builder:
    """Adds targets to a :class:`Lineup` and hands back the table rows that show them."""

    def __init__(
        self,
        layout: Layout,
        tuning: Tuning,
        capabilities: Capabilities,
        trained: Mapping[str, BenchModel],
        cases: AbstractSet[str],
        peers: AbstractSet[str],
    ) -> None:
        self.layout = layout
        self.tuning = tuning
        self.capabilities = capabilities
        self.trained = trained
        self.cases = cases
        self.peers = peers
        self.lineup = Lineup()
        self.ceilings: tuple[Row, ...] = ()

    def measured(
        self,
        role: str,
        server: Server,
        model: BenchModel | None,
        request: Request | None = None,
        rows: int = 1,
    ) -> Row:
        """Adds ``server`` as a target the checks know by ``role``; returns its row."""
        self.lineup.targets.append(Target(server, model, rows, request))
        self.lineup.roles.setdefault(role, []).append(server.key)
        return Row(server.key, server.name, server.settings)

    def flaskserve(
        self,
        key: str,
        model: BenchModel,
        *,
        batching: bool = False,
        cache: bool = False,
        granian: bool = False,
        request: Request | None = None,
        rows: int = 1,
    ) -> Row:
        """A flaskserve target whose role is its key, with the features asked for and no others."""
        server = servers.flaskserve(
            self.layout,
            key,
            model,
            self.tuning,
            free_port(),
            flags=self.capabilities.flags,
            batching=batching,
            cache=cache,
            granian=granian,
        )
        return self.measured(key, server, model, request, rows)

    def tutorial_gunicorn(self, key: str, model: BenchModel) -> Row:
        server = servers.tutorial_gunicorn(self.layout, key, model, self.tuning, free_port())
        return self.measured(key, server, model)

    def peers_of(self, case: str, role: str, model: BenchModel, *, batching: bool) -> list[Row]:
        """The peer rows of ``case`` that the run includes, all under ``role``: the best one counts."""
        rows = []
        if "mlserver" in self.peers:
            batch = (self.tuning.max_batch_size, self.tuning.max_batch_delay_ms / 1000)
            variants = CASE_2_MLSERVER if batching else CASE_1_MLSERVER
            for variant in variants:
                server = servers.mlserver(
                    self.layout,
                    variant.key,
                    model,
                    free_port(),
                    debug=False,
                    parallel_workers=variant.parallel_workers,
                    batch=batch if variant.adaptive_batching else None,
                )
                rows.append(self.measured(role, server, model))
        suffix = "-batch" if batching else ""
        if "litserve" in self.peers:
            server = servers.litserve(
                self.layout, f"c{case}-litserve{suffix}", model, self.tuning, free_port(), batching=batching
            )
            rows.append(self.measured(role, server, model))
        if "bentoml" in self.peers:
            key = f"c{case}-bentoml{suffix}"
            try:
                server = servers.bentoml(self.layout, key, model, self.tuning, free_port(), batching=batching)
            except (OSError, subprocess.SubprocessError) as error:
                self.lineup.notes.append(
                    f"{key} is not in this run: saving its model to BentoML failed ({error})."
                )
            else:
                rows.append(self.measured(role, server, model))
        return rows

    def add_ceilings(self) -> None:
        """The hello-world apps, raw WSGI and Flask, on each WSGI server flaskserve runs on."""
        tuning, layout = self.tuning, self.layout
        ceilings = []
        for app, prefix in (("raw", "hello"), ("flask", "flask-hello")):
            server = servers.hello(layout, prefix, tuning, free_port(), app=app)
            ceilings.append(self.measured(prefix, server, None))
            if self.capabilities.granian:
                server = servers.hello_granian(layout, f"{prefix}-granian", tuning, free_port(), app=app)
                ceilings.append(self.measured(f"{prefix}-granian", server, None))
        self.ceilings = tuple(ceilings)


def _absent_flaskserve(why: str) -> Row:
    return Row("absent-flaskserve", "flaskserve", "", skipped=why)


def _case_1(builder: _Builder) -> Case:
    linear = builder.trained["linear"]
    capabilities = builder.capabilities
    rows = []
    if capabilities.serve:
        rows.append(builder.flaskserve("c1-flaskserve", linear))
    else:
        rows.append(_absent_flaskserve("not measured: `flaskserve serve` is not available"))
    if capabilities.granian:
        rows.append(builder.flaskserve("c1-flaskserve-granian", linear, granian=True))
    rows.append(builder.tutorial_gunicorn("c1-gunicorn", linear))
    rows += builder.peers_of("1", "c1-peers", linear, batching=False)
    rows += builder.ceilings
    return Case(
        title="Case 1: the tutorial's LinearRegression, one row per request",
        about='Body `{"x": 1, "y": 2}` (MLServer: the same row as a V2 tensor; '
        'BentoML: `{"rows": [[1, 2]]}`). '
        "The model costs microseconds, so this measures each server's own overhead. "
        "The peers run without batching here: it can only add waiting to a model this cheap. "
        "The hello-world rows are the ceilings: raw WSGI (no framework) and the smallest Flask app, "
        "each on gunicorn and on granian.",
        reference="c1-flaskserve",
        rows=rows,
    )


def _case_2(builder: _Builder) -> Case:
    forest = builder.trained["forest"]
    capabilities = builder.capabilities
    rows = []
    if capabilities.serve and capabilities.batching:
        rows.append(builder.flaskserve("c2-batched", forest, batching=True))
    else:
        why = "flaskserve serve" if not capabilities.serve else "`--max-batch-size`/`--max-batch-delay`"
        rows.append(_absent_flaskserve(f"not measured: {why} not available"))
    if capabilities.granian and capabilities.batching:
        rows.append(builder.flaskserve("c2-batched-granian", forest, batching=True, granian=True))
    if capabilities.serve:
        rows.append(builder.flaskserve("c2-unbatched", forest))
    rows.append(builder.tutorial_gunicorn("c2-gunicorn", forest))
    rows += builder.peers_of("2", "c2-peers-batched", forest, batching=True)
    return Case(
        title="Case 2: RandomForestRegressor (100 trees), one row per request",
        about='Body: the 20 features by name, `{"x0": …, "x19": …}` (MLServer: a V2 tensor; BentoML: '
        '`{"rows": [[…]]}`). Here the model dominates, so what matters is how many rows each `predict` '
        "call gets: batching servers merge concurrent requests into one call. Every peer runs with its "
        "own batching on. Ratios are against batched flaskserve.",
        reference="c2-batched" if capabilities.batching else "c2-unbatched",
        rows=rows,
    )


def _case_3(builder: _Builder) -> Case:
    forest = builder.trained["forest"]
    capabilities = builder.capabilities
    rows = []
    if capabilities.serve and capabilities.cache:
        rows.append(builder.flaskserve("c3-cache", forest, cache=True))
    else:
        why = "flaskserve serve" if not capabilities.serve else "`--cache-size`"
        rows.append(_absent_flaskserve(f"not measured: {why} not available"))
    if capabilities.granian and capabilities.cache:
        rows.append(builder.flaskserve("c3-cache-granian", forest, cache=True, granian=True))
    if "2" in builder.cases and capabilities.serve:
        # Case 2's unbatched row is the same server with the cache off: shown, not run twice.
        rows.append(Row("c2-unbatched", "flaskserve", "same as case 2, cache off"))
    rows += builder.ceilings
    return Case(
        title="Case 3: repeated identical requests (cache hits)",
        about="The case 2 forest and body, sent again and again, so after the first request every "
        "answer can come from flaskserve's response cache. The hello-world rows are the ceilings.",
        reference="c3-cache",
        rows=rows,
    )


def _large_requests() -> list[tuple[str, str, Request, Callable[[], object]]]:
    """(key stem, label, request, parse floor) of each large request, from ``inprocess``'s bodies."""
    wanted = {"1,000 rows by position, JSON": "json", "1,000 rows, V2 binary tensor": "binary"}
    found = []
    for label, path, content_type, body, extra, floor in large_cases():
        if label not in wanted:
            continue
        headers = {"Content-Type": content_type}
        # The WSGI environ names the header as CGI does; on the wire it is the HTTP header.
        headers |= {name[5:].replace("_", "-").title(): value for name, value in extra.items()}
        answer = "outputs" if path.startswith("/v2/") else "prediction"
        found.append((wanted[label], label, Request(path, body, headers, answer), floor))
    return found


def _case_large(builder: _Builder) -> Case:
    linear = builder.trained["linear"]
    capabilities = builder.capabilities
    rows = []
    for stem, label, request, floor in _large_requests():
        key = f"c4-{stem}"
        if not capabilities.serve:
            rows.append(_absent_flaskserve("not measured: `flaskserve serve` is not available"))
            continue
        served = [builder.flaskserve(key, linear, request=request, rows=LARGE_ROWS)]
        if capabilities.granian:
            served.append(
                builder.flaskserve(f"{key}-granian", linear, granian=True, request=request, rows=LARGE_ROWS)
            )
        rows += [replace(row, name=f"flaskserve: {label}") for row in served]
        # CPU time: the ceiling is what one core can do, not what a busy machine lets it do.
        seconds = models.floor_seconds(floor, clock=time.thread_time)
        builder.lineup.floors.append(Floor(f"{key}-floor", seconds, LARGE_ROWS))
        rows.append(
            Row(
                f"{key}-floor",
                "parse floor (ceiling)",
                f"{label}: orjson and numpy in process, one core, no server",
            )
        )
    return Case(
        title="Case 4: large requests, 1,000 rows each",
        about='The case 1 model, 1,000 rows per request: as JSON rows by position (`{"instances": [[…], …]}` '
        "to `/predict`) and as a V2 binary tensor (1,000 by 2 FP64 after a JSON header, to "
        "`/v2/models/linear/infer`). Here rows/s is what counts. Each body's *parse floor* is the same "
        "bytes turned into a float64 matrix in one process on one core, in CPU time (orjson and numpy, "
        "no server, no validation, no model): the ceiling for that body, measured in process, so its "
        "latency columns show one parse. The binary body's floor is a header parse and a zero-copy view "
        "of the bytes, so no server comes near it; it is there to show that the cost is all in the serving.",
        reference="c4-json",
        rows=rows,
    )


#: The case tables by the name ``--cases`` gives them, in the order they run and are reported.
CASES: dict[str, Callable[[_Builder], Case]] = {
    "1": _case_1,
    "2": _case_2,
    "3": _case_3,
    "large": _case_large,
}

#: The cases whose tables end with the hello-world ceilings.
CASES_WITH_CEILINGS = frozenset({"1", "3"})


def _capability_notes(capabilities: Capabilities) -> list[str]:
    if not capabilities.serve:
        return ["`flaskserve serve` was not available when this ran, so only the peers were measured."]
    missing = [
        name for name, ok in (("batching", capabilities.batching), ("cache", capabilities.cache)) if not ok
    ]
    if missing:
        return [f"flaskserve had no flags for {' and '.join(missing)} when this ran; those rows are absent."]
    return []


def build_lineup(
    cases: AbstractSet[str],
    layout: Layout,
    tuning: Tuning,
    capabilities: Capabilities,
    trained: Mapping[str, BenchModel],
    peers: AbstractSet[str],
    skipped_peers: Mapping[str, str],
) -> Lineup:
    """The line-up for ``cases``, from the models in ``trained`` and what flaskserve can do.

    Building writes the servers' configuration files into the scratch folder but starts nothing.
    """
    builder = _Builder(layout, tuning, capabilities, trained, cases, peers)
    if cases & CASES_WITH_CEILINGS:
        builder.add_ceilings()
    for name, build_case in CASES.items():
        if name in cases:
            builder.lineup.cases.append(build_case(builder))
    builder.lineup.notes += _capability_notes(capabilities)
    builder.lineup.notes += [f"{peer} is not in this run: {why}." for peer, why in skipped_peers.items()]
    return builder.lineup


def floor_summaries(floors: Sequence[Floor], options: Options) -> dict[RunKey, Summary]:
    """The in-process rows as summaries at every concurrency, so the tables and checks read them alike.

    A parse floor runs on one core with no connection at all: its "latency" is one parse.
    """
    found = {}
    for floor in floors:
        ms = floor.seconds * 1000
        summary = Summary(1 / floor.seconds, floor.rows / floor.seconds, ms, ms, 0.0, 1, 0, 0.0)
        found |= {(floor.key, concurrency): summary for concurrency in options.concurrency}
    return found
