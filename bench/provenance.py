"""Everything about a run that is not a measurement, gathered into the report's :class:`Context`.

The report has to let a reader repeat the run: the command and its parameters, the exact
command line of every server and of wrk, the models, the machine and the versions.  Paths are
shown relative to the repository, with the run's scratch folder as ``$BENCH_TMP``, so the
committed report does not change with who ran it where.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

import environment
import load
from lineup import Lineup
from options import Options
from report import Context
from servers import Layout
from target import Target

from models import BenchModel

#: How the report names the benchmark's own command, relative to the repository.
INVOCATION = ".venv/bin/python bench/run.py"


def _title_note(options: Options, elapsed: float) -> str:
    load_1, load_5, _ = os.getloadavg()
    return (
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d} with {options.repetitions} repetition(s) of "
        f"{options.duration:g} s per server and concurrency; the whole run took {elapsed / 60:.1f} min. "
        f"The machine's load average as the run ended was {load_1:.1f} (1 min) and {load_5:.1f} (5 min) on "
        f"{os.cpu_count()} cores."
    )


def _parameters(options: Options, layout: Layout) -> list[tuple[str, str]]:
    tuning = options.tuning
    command = INVOCATION + "".join(f" {arg}" for arg in options.given)
    return [
        ("command", f"`{layout.display(command)}`"),
        (
            "wrk run",
            f"{options.duration:g} s, 1 wrk thread, after {options.warmup:g} s of warm-up per server",
        ),
        ("repetitions", str(options.repetitions)),
        ("concurrency", ", ".join(map(str, options.concurrency))),
        ("workers, threads", f"{tuning.workers} x {tuning.threads} (flaskserve and gunicorn rows)"),
        ("batching", f"{tuning.max_batch_size} rows, {tuning.max_batch_delay_ms:g} ms"),
        ("cache", f"{tuning.cache_size} entries (case 3 only)"),
    ]


def _commands(targets: Sequence[Target], layout: Layout, duration: float) -> list[tuple[str, str]]:
    """Every server's command line, then wrk's, with the concurrency left as ``C``.

    wrk's line is shown for one target that serves a model; the others differ only in URL and
    body file.
    """
    commands = [(f"{t.server.name}, {t.server.settings}", t.server.command(layout)) for t in targets]
    sample = next((t for t in targets if t.model is not None), targets[0])
    wrk = " ".join(load.command("wrk", sample.url, 0, duration)).replace("--connections 0", "--connections C")
    commands.append(
        (
            "wrk, for each server and concurrency C",
            layout.display(f"BENCH_BODY_FILE=$BENCH_TMP/{sample.key}.json {wrk}"),
        )
    )
    return commands


def describe_run(
    options: Options,
    layout: Layout,
    lineup: Lineup,
    trained: Mapping[str, BenchModel],
    versions: list[tuple[str, str]],
    notes: Sequence[str],
    elapsed: float,
) -> Context:
    """The report's context; ``elapsed`` is the seconds the run took, ``versions`` from :mod:`environment`."""
    return Context(
        title_note=_title_note(options, elapsed),
        invocation=INVOCATION,
        parameters=_parameters(options, layout),
        machine=environment.machine(),
        versions=versions,
        models=[(model.name, model.description) for model in trained.values()],
        commands=_commands(lineup.targets, layout, options.duration),
        notes=notes,
    )
