"""The line-up of one run: which servers are measured, in which tables, compared with which.

Each case is a function that adds its servers and returns its table; :data:`CASES` maps the
names ``--cases`` takes to them.  A row whose flaskserve feature the installed build lacks is
kept in its table as absent, with the reason, so a reader never mistakes a missing row for a
slow one.  Each measured row also gets a *role*, the name the target checks look it up by (see
:func:`goals.check_targets`); several MLServer configurations share one role, and the best
of them is the one flaskserve is held against.

Targets keep the order in which they are added: it is the order servers start in, the first
order of the rotation, and the order of the commands in the report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

import servers
from process import free_port
from report import Case, Row
from servers import Capabilities, Layout, Server, Tuning
from target import Target

from models import BenchModel


@dataclass(frozen=True)
class MLServerVariant:
    """One MLServer configuration: None keeps MLServer's own default for that setting."""

    key: str
    role: str
    debug: bool | None = None
    parallel_workers: int | None = None
    adaptive_batching: bool = False


# Case 1 shows MLServer out of the box, then tuned; adaptive batching can only add waiting to a
# model that costs microseconds, so it is left out here.
CASE_1_MLSERVER = (
    MLServerVariant("c1-mlserver-defaults", "c1-mlserver"),
    MLServerVariant("c1-mlserver-pw0", "c1-mlserver", debug=False, parallel_workers=0),
    MLServerVariant("c1-mlserver-pw2", "c1-mlserver", debug=False, parallel_workers=2),
)

# Case 2 compares batched flaskserve with batched MLServer, and unbatched with unbatched.
CASE_2_MLSERVER = (
    MLServerVariant(
        "c2-mlserver-pw0-batch",
        "c2-mlserver-batched",
        debug=False,
        parallel_workers=0,
        adaptive_batching=True,
    ),
    MLServerVariant(
        "c2-mlserver-pw2-batch",
        "c2-mlserver-batched",
        debug=False,
        parallel_workers=2,
        adaptive_batching=True,
    ),
    MLServerVariant("c2-mlserver-pw0", "c2-mlserver", debug=False, parallel_workers=0),
    MLServerVariant("c2-mlserver-pw2", "c2-mlserver", debug=False, parallel_workers=2),
)


@dataclass
class Lineup:
    """The targets to run, the tables they form, the rows each target check compares, and notes."""

    targets: list[Target] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    roles: dict[str, list[str]] = field(default_factory=dict)
    """Target keys by role, the names :func:`goals.check_targets` looks rows up by."""
    notes: list[str] = field(default_factory=list)

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
        with_mlserver: bool,
    ) -> None:
        self.layout = layout
        self.tuning = tuning
        self.capabilities = capabilities
        self.trained = trained
        self.cases = cases
        self.with_mlserver = with_mlserver
        self.lineup = Lineup()
        self.ceilings: tuple[Row, ...] = ()

    def measured(self, role: str, server: Server, model: BenchModel | None) -> Row:
        """Adds ``server`` as a target the checks know by ``role``; returns its row."""
        self.lineup.targets.append(Target(server, model))
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
        return self.measured(key, server, model)

    def tutorial_gunicorn(self, key: str, model: BenchModel) -> Row:
        server = servers.tutorial_gunicorn(self.layout, key, model, self.tuning, free_port())
        return self.measured(key, server, model)

    def mlservers(self, variants: Sequence[MLServerVariant], model: BenchModel) -> list[Row]:
        """The MLServer rows, or none when MLServer is left out of the run."""
        if not self.with_mlserver:
            return []
        batch = (self.tuning.max_batch_size, self.tuning.max_batch_delay_ms / 1000)
        return [
            self.measured(
                variant.role,
                servers.mlserver(
                    self.layout,
                    variant.key,
                    model,
                    free_port(),
                    debug=variant.debug,
                    parallel_workers=variant.parallel_workers,
                    batch=batch if variant.adaptive_batching else None,
                ),
                model,
            )
            for variant in variants
        ]

    def add_ceilings(self) -> None:
        """The hello-world apps, one per WSGI server flaskserve runs on: no model, pure overhead."""
        hello = servers.hello(self.layout, "hello", self.tuning, free_port())
        ceilings = [self.measured("hello", hello, None)]
        if self.capabilities.granian:
            hello_granian = servers.hello_granian(self.layout, "hello-granian", self.tuning, free_port())
            ceilings.append(self.measured("hello-granian", hello_granian, None))
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
    dev_server = servers.tutorial_dev_server(builder.layout, "c1-app-run", linear, free_port())
    rows.append(builder.measured("c1-app-run", dev_server, linear))
    rows.append(builder.tutorial_gunicorn("c1-gunicorn", linear))
    rows += builder.mlservers(CASE_1_MLSERVER, linear)
    rows += builder.ceilings
    return Case(
        title="Case 1: the tutorial's LinearRegression, one row per request",
        about='Body `{"x": 1, "y": 2}` (MLServer: the same row as a V2 tensor). '
        "The model costs microseconds, so this measures each server's own overhead. "
        "MLServer's adaptive batching is left out here: "
        "it can only add waiting to a model this cheap.",
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
    if capabilities.serve:
        rows.append(builder.flaskserve("c2-unbatched", forest))
    if capabilities.granian and capabilities.batching:
        rows.append(builder.flaskserve("c2-batched-granian", forest, batching=True, granian=True))
        rows.append(builder.flaskserve("c2-unbatched-granian", forest, granian=True))
    rows.append(builder.tutorial_gunicorn("c2-gunicorn", forest))
    rows += builder.mlservers(CASE_2_MLSERVER, forest)
    return Case(
        title="Case 2: RandomForestRegressor, one row per request",
        about='Body: the 20 features by name, `{"x0": …, "x19": …}` (MLServer: a V2 tensor). '
        "Here the model dominates, so what matters is how many rows each `predict` call gets: "
        "batching servers merge concurrent requests into one call. "
        "Ratios are against batched flaskserve.",
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
        "answer can come from flaskserve's response cache. The hello-world row is the ceiling.",
        reference="c3-cache",
        rows=rows,
    )


#: The case tables by the name ``--cases`` gives them, in the order they run and are reported.
CASES: dict[str, Callable[[_Builder], Case]] = {"1": _case_1, "2": _case_2, "3": _case_3}

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
    with_mlserver: bool,
) -> Lineup:
    """The line-up for ``cases``, from the models in ``trained`` and what flaskserve can do.

    Building writes the servers' configuration files into the scratch folder but starts nothing.
    """
    builder = _Builder(layout, tuning, capabilities, trained, cases, with_mlserver)
    if cases & CASES_WITH_CEILINGS:
        builder.add_ceilings()
    for name, build_case in CASES.items():
        if name in cases:
            builder.lineup.cases.append(build_case(builder))
    builder.lineup.notes += _capability_notes(capabilities)
    return builder.lineup
