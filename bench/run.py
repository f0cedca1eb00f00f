"""Benchmark flaskserve against the servers people would otherwise use, side by side in one run.

Usage (from the repository root)::

    .venv/bin/python bench/run.py          # full run, ~12 minutes on 2 cores; updates docs/benchmarks.md
    .venv/bin/python bench/run.py --quick  # smoke run, ~3 minutes; writes bench/results/ only

The run trains its models into a scratch folder, times ``model.predict`` in process (the compute
floor), starts every server at once, checks each one answers the benchmark request correctly,
then measures them in turn with wrk, rotating the order between repetitions so that drift on
the machine spreads over all servers instead of favouring one.  A memory phase follows, then
the report is printed and written.  Every process started is stopped, by process group, on the
way out, including on Ctrl-C.

Needs wrk on PATH and, for the peer rows (MLServer, LitServe, BentoML), ``bench/setup_peers.sh``
run once; a peer whose virtualenv it could not make is left out, and the report says so.

This module only runs the phases in order; each lives in a module of its own: ``options``
(the command line), ``lineup`` (which servers, in which tables), ``target`` (starting and
checking one), ``measurement`` (the wrk runs), ``memory``, ``environment`` (machine and
versions), ``provenance`` (the report's context), ``results`` (the figures), ``goals`` (the
targets they are checked against) and ``report`` (the Markdown).
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import environment
import load
import peer_envs
from goals import Check, Goals, check_targets
from lineup import Lineup, build_lineup, floor_summaries
from measurement import estimate_seconds, measure
from memory import measure_memory
from options import Options, parse_options
from process import ServerProcess, running
from progress import say
from provenance import describe_run
from report import render
from results import OTHER_LOAD_WARNING, Measurements, MemoryResult, RunKey, Summary
from servers import Capabilities, Layout
from target import start_all

import models
from models import BenchModel, Floor

REPO = Path(__file__).resolve().parent.parent


def _peers(options: Options) -> tuple[set[str], dict[str, str]]:
    """The peers this run measures, and why each other one is left out.

    Peers only appear in cases 1 and 2.
    """
    if not options.cases & {"1", "2"}:
        return set(), {}
    included, skipped = set(), {}
    for peer in peer_envs.PEERS:
        if peer in options.skip_peers:
            skipped[peer] = "left out with --skip-peer"
        elif not peer_envs.installed(peer):
            skipped[peer] = (
                "its virtualenv is missing; bench/setup_peers.sh makes it or prints why it could not"
            )
        else:
            included.add(peer)
    for peer, why in skipped.items():
        say(f"warning: {peer} is not in this run: {why}")
    return included, skipped


def _probe_flaskserve() -> Capabilities:
    """What the installed flaskserve can do; warns when the flaskserve rows cannot run at all."""
    # The same environment the servers are started from (``Layout.venv_bin``).
    venv_bin = Path(sys.executable).parent
    capabilities = Capabilities.probe(venv_bin / "flaskserve", venv_bin / "granian")
    if not capabilities.serve:
        missing = " ".join(capabilities.missing_required)
        say(f"warning: `flaskserve serve` is missing or lacks {missing}; measuring the peers only")
    return capabilities


def _scratch_folder(stack: ExitStack, keep: bool) -> Path:
    """A fresh folder for models, server configs and logs, removed when ``stack`` closes unless kept."""
    scratch = Path(tempfile.mkdtemp(prefix="flaskserve-bench-"))
    if keep:
        say(f"scratch folder (kept): {scratch}")
    else:
        stack.callback(shutil.rmtree, scratch, ignore_errors=True)
    return scratch


def _measure_servers(lineup: Lineup, options: Options, wrk: str, layout: Layout) -> Measurements:
    """Starts the whole line-up, measures the servers that answer, and stops them all."""
    targets = lineup.targets
    estimate = estimate_seconds(len(targets), options)
    say(f"starting {len(targets)} servers; measuring takes about {estimate / 60:.0f} min")
    processes: list[ServerProcess] = []
    with running(processes):
        ready = start_all(targets, layout.logs, processes)
        return measure(ready, options, wrk, layout.scratch, processes)


def _memory_phase(
    options: Options,
    layout: Layout,
    capabilities: Capabilities,
    trained: dict[str, BenchModel],
    wrk: str,
) -> tuple[list[MemoryResult], int | None]:
    """The memory results and the large model's own size in memory, or nothing when not asked for."""
    if "memory" not in options.cases:
        return [], None
    say("measuring memory")
    model_bytes = models.loaded_size_bytes(trained["large"])
    return measure_memory(layout, trained["large"], options.tuning, capabilities, wrk), model_bytes


def _check_targets(
    options: Options,
    lineup: Lineup,
    summaries: dict[RunKey, Summary],
    floors: Sequence[Floor],
    memory: Sequence[MemoryResult],
    model_bytes: int | None,
) -> list[Check]:
    """The project's targets, checked against the summaries of this run."""

    def lookup(key: str, concurrency: int) -> Summary | None:
        return summaries.get((key, concurrency))

    full_batch = models.full_batch_ms(floors, options.max_batch_size)
    goals = Goals(
        options.concurrency, options.max_batch_size, options.max_batch_delay, full_batch, model_bytes, memory
    )
    return check_targets(lookup, lineup.roles, goals)


def _run(
    options: Options, layout: Layout, capabilities: Capabilities, wrk: str, started_at: float
) -> tuple[str, Measurements]:
    """Every phase of the run, in order; returns the report and the raw measurements."""
    peers, skipped_peers = _peers(options)
    say("training models")
    trained = models.train_all(layout.scratch, large="memory" in options.cases)
    say("timing model.predict in process")
    floors = models.time_floors(trained, options.max_batch_size)
    lineup = build_lineup(options.cases, layout, options.tuning, capabilities, trained, peers, skipped_peers)
    measurements = _measure_servers(lineup, options, wrk, layout)
    memory, model_bytes = _memory_phase(options, layout, capabilities, trained, wrk)
    summaries = {**measurements.summaries(lineup.rows_per_request), **floor_summaries(lineup.floors, options)}
    checks = _check_targets(options, lineup, summaries, floors, memory, model_bytes)
    peer_pythons = {peer: layout.peer_bin(peer) / "python" for peer in sorted(peers)}
    versions = environment.versions(REPO, Path(sys.executable), peer_pythons, wrk)
    notes = [*lineup.notes, *measurements.notes()]
    elapsed = time.monotonic() - started_at
    context = describe_run(options, layout, lineup, trained, versions, notes, elapsed)
    text = render(
        context,
        lineup.cases,
        options.concurrency,
        summaries,
        checks,
        floors,
        memory,
        model_bytes,
        OTHER_LOAD_WARNING,
    )
    return text, measurements


def _publish(text: str, measurements: Measurements, options: Options) -> None:
    """Prints the report and writes it, with the raw runs, to the results folder and ``--output``."""
    say("")
    say(text)
    stem = measurements.save(options.results_dir, text)
    say(f"wrote {stem}.md and .json")
    if options.output:
        options.output.write_text(text)
        say(f"wrote {options.output}")


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark as ``argv`` asks; 0 on success, 2 when a prerequisite is missing."""
    options = parse_options(argv, description=__doc__.split("\n\n")[0], repo=REPO)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started_at = time.monotonic()
    try:
        wrk = load.find_wrk()
    except load.LoadError as error:
        say(f"error: {error}")
        return 2
    capabilities = _probe_flaskserve()
    with ExitStack() as stack:
        layout = Layout(
            REPO,
            Path(sys.executable).parent,
            peer_envs.folder(),
            _scratch_folder(stack, options.keep_scratch),
        )
        layout.logs.mkdir()
        text, measurements = _run(options, layout, capabilities, wrk, started_at)
    _publish(text, measurements, options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
