"""Renders a run as Markdown: the tables, the targets, and everything needed to reproduce them.

The same text is printed to the terminal and written to ``docs/benchmarks.md``, so what a
reader finds in the docs is exactly what the last full run printed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from goals import Check
from results import MemoryResult, Summary

from models import Floor


@dataclass(frozen=True)
class Row:
    """One server configuration in a case table."""

    key: str
    name: str
    settings: str
    skipped: str | None = None


@dataclass(frozen=True)
class Case:
    """One table: a workload, the rows compared on it, and the flaskserve row ratios refer to."""

    title: str
    about: str
    reference: str
    rows: Sequence[Row]


@dataclass(frozen=True)
class Context:
    """Everything about a run that is not a measurement."""

    title_note: str
    invocation: str
    parameters: Sequence[tuple[str, str]]
    machine: Sequence[tuple[str, str]]
    versions: Sequence[tuple[str, str]]
    models: Sequence[tuple[str, str]]
    commands: Sequence[tuple[str, str]]
    notes: Sequence[str]


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _table(header: Sequence[str], body: Sequence[Sequence[str]], align: str = "") -> list[str]:
    marks = [("---:" if kind == "r" else "---") for kind in align.ljust(len(header), "l")]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return lines


def case_table(
    case: Case,
    concurrencies: Sequence[int],
    summaries: Mapping[tuple[str, int], Summary],
    disturbed: float,
) -> list[str]:
    """The case's rows at each concurrency, with each row's throughput over flaskserve's.

    A row whose runs saw at least ``disturbed`` cores of unrelated load is marked with †.
    """
    body = []
    for c in concurrencies:
        reference = summaries.get((case.reference, c))
        for row in case.rows:
            summary = summaries.get((row.key, c))
            if summary is None:
                reason = row.skipped or "not measured"
                body.append([str(c), row.name, row.settings, reason, "", "", "", "", ""])
                continue
            ratio = (
                f"{summary.requests_per_second / reference.requests_per_second:.2f}"
                if reference and reference.requests_per_second
                else "—"
            )
            errors = f" ({summary.errors} errors)" if summary.errors else ""
            if summary.other_load >= disturbed:
                errors += " †"
            body.append(
                [
                    str(c),
                    f"**{row.name}**" if row.key == case.reference else row.name,
                    row.settings,
                    _rate(summary.requests_per_second) + errors,
                    _rate(summary.rows_per_second),
                    _ms(summary.p50_ms),
                    _ms(summary.p99_ms),
                    f"±{summary.spread / 2:.0%}" if summary.repetitions > 1 else "—",
                    ratio,
                ]
            )
    header = ["conc.", "server", "settings", "req/s", "rows/s", "p50 ms", "p99 ms", "spread", "÷ flaskserve"]
    return _table(header, body, "rllrrrrrr")


def checks_table(checks: Sequence[Check]) -> list[str]:
    verdict = {True: "pass", False: "**miss**", None: "—"}
    body = [[c.case, c.goal, c.where, c.measured, c.required, verdict[c.passed]] for c in checks]
    return _table(["case", "target", "where", "measured", "required", "result"], body, "llllll")


def floor_table(floors: Sequence[Floor]) -> list[str]:
    body = [[f.model, str(f.rows), f"{f.seconds * 1000:.3f}", _rate(f.rows / f.seconds)] for f in floors]
    return _table(["model", "rows per call", "predict ms (median)", "rows/s on one core"], body, "lrrr")


def memory_table(results: Sequence[MemoryResult], model_bytes: int | None) -> list[str]:
    body = []
    base: dict[str, MemoryResult] = {}
    for result in results:
        first = base.setdefault(result.server, result)
        extra = result.workers - first.workers
        if extra:
            growth = (result.pss - first.pss) / extra
            share = f" ({growth / model_bytes:.0%} of model)" if model_bytes else ""
            per_worker = f"{growth / 2**20:.1f}{share}"
        else:
            per_worker = "—"
        body.append(
            [
                result.server,
                str(result.workers),
                str(result.processes),
                f"{result.pss / 2**20:.0f}",
                f"{result.rss / 2**20:.0f}",
                per_worker,
            ]
        )
    header = ["server", "workers", "processes", "total PSS MiB", "total RSS MiB", "PSS MiB per extra worker"]
    return _table(header, body, "lrrrrr")


def _introduction(context: Context) -> list[str]:
    return [
        "# Benchmarks",
        "",
        "How fast flaskserve serves scikit-learn models next to the servers people would otherwise use, "
        "measured side by side in one run on one machine. Regenerate this page with `make bench`, which runs "
        f"`{context.invocation}` (about 12 minutes); `--quick` gives a smoke run of a few minutes that does "
        "not touch this page. The peers (MLServer, LitServe, BentoML) each run from a virtualenv of their "
        "own that `bench/setup_peers.sh` makes under a cache folder outside the repository; a peer whose "
        "install failed is left out and named in the notes.",
        "",
        context.title_note,
        "",
        "Every server runs as its own process on 127.0.0.1 and is driven by [wrk](https://github.com/wg/wrk) "
        "from another process, closed-loop: each connection sends its next request when the previous answer "
        "arrives, so *concurrency* is the number of connections. Servers are measured in turn, the order "
        "rotating between repetitions and concurrencies, and each figure is the median over repetitions; "
        "*spread* is half the range of requests/s over those repetitions. "
        "*÷ flaskserve* is the row's requests/s divided by the bold flaskserve row's at the same "
        "concurrency. "
        "Every request carries one row, so rows/s equals requests/s except where a row says otherwise.",
        "",
        "Load generator and servers share the machine's cores, as they do on any single-host benchmark: the "
        "figures compare servers with each other, they are not the capacity of a dedicated host. Quote them "
        "as ratios between rows of one run, never as absolute capacity: the machine may also be shared with "
        "other work (the notes say how much other load the runs saw).",
        "",
        "The ceilings: a raw-WSGI hello-world (no framework, a constant answer) and the smallest Flask app "
        "(one route, a constant answer), each on gunicorn and on granian with flaskserve's worker and "
        "thread counts; for large requests, the in-process parse floor of each body.",
        "",
    ]


def _floor_and_memory(
    floors: Sequence[Floor], memory: Sequence[MemoryResult], model_bytes: int | None
) -> list[str]:
    out = [
        "## Compute floor",
        "",
        "`model.predict` called in one process on a float array, no server involved: no server can answer "
        "faster than this.",
        "",
        *floor_table(floors),
        "",
        "## Memory",
        "",
        "Summed over the server's whole process group (master and workers), idle after a short warm-up, "
        "serving the large model below. PSS shares each page between the processes that map it, so a model "
        "loaded before the fork and shared copy-on-write counts once; the RSS sum counts it once per "
        "process.",
        "",
    ]
    if model_bytes:
        out += [f"The model adds {model_bytes / 2**20:.0f} MiB to a process that loads it.", ""]
    return [*out, *memory_table(memory, model_bytes), ""]


def _how_it_ran(context: Context) -> list[str]:
    """The notes, then everything needed to repeat the run: parameters, models, machine, commands."""
    out = []
    if context.notes:
        out += ["## Notes", "", *[f"- {note}" for note in context.notes], ""]
    out += ["## Run", "", *_table(["parameter", "value"], context.parameters), ""]
    out += ["## Models", "", *_table(["model", "what"], context.models), ""]
    out += ["## Machine", "", *_table(["", ""], context.machine), ""]
    out += ["## Versions", "", *_table(["package", "version"], context.versions), ""]
    out += [
        "## Commands",
        "",
        "`$BENCH_TMP` is the run's scratch folder, where the models, MLServer's settings and BentoML's "
        "model store are written; `$BENCH_PEERS` is the folder of the peers' virtualenvs; other paths are "
        "relative to the repository.",
        "",
    ]
    for label, command in context.commands:
        out += [f"{label}:", "", "```sh", command, "```", ""]
    return out


def render(
    context: Context,
    cases: Sequence[Case],
    concurrencies: Sequence[int],
    summaries: Mapping[tuple[str, int], Summary],
    checks: Sequence[Check],
    floors: Sequence[Floor],
    memory: Sequence[MemoryResult],
    model_bytes: int | None,
    disturbed: float,
) -> str:
    """The whole report as Markdown: targets first, then each case, the floor, memory, and the record.

    ``disturbed`` is the other load, in cores, above which a row is marked with †.
    """
    out = [*_introduction(context), "## Targets", "", *checks_table(checks), ""]
    for case in cases:
        out += [
            f"## {case.title}",
            "",
            case.about,
            "",
            *case_table(case, concurrencies, summaries, disturbed),
            "",
        ]
    out += _floor_and_memory(floors, memory, model_bytes)
    out += _how_it_ran(context)
    return "\n".join(out).rstrip() + "\n"
