"""The command line of ``bench/run.py``, read into typed :class:`Options`.

``--quick`` is a preset rather than a mode: it only changes the defaults of the timing options
and leaves the report out of the docs, so everything else behaves as in a full run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from peer_envs import PEERS
from servers import Tuning


@dataclass(frozen=True)
class Options:
    """One run's settings, after ``--quick`` and the defaults that depend on it are applied."""

    duration: int
    """Seconds per wrk run."""
    repetitions: int
    """Runs per server and concurrency."""
    warmup: int
    """Seconds of unmeasured load per server before the first run."""
    concurrency: tuple[int, ...]
    """Connection counts, in the order they are run."""
    quick: bool
    workers: int
    threads: int
    max_batch_size: int
    max_batch_delay: float
    """Milliseconds a batch may wait to fill."""
    cache_size: int
    cases: frozenset[str]
    """Which of ``1``, ``2``, ``3``, ``large`` and ``memory`` to run."""
    retries: int
    """Extra attempts for a run that other processes on the machine disturbed."""
    patience: float
    """Seconds the whole run may spend waiting for other processes to leave the CPU idle."""
    skip_peers: frozenset[str]
    """Peers left out of the line-up (``mlserver``, ``litserve``, ``bentoml``)."""
    output: Path | None
    """The Markdown report to write besides the results folder, if any."""
    results_dir: Path
    keep_scratch: bool
    given: tuple[str, ...]
    """The arguments as given, for the report's record of the command."""

    @property
    def tuning(self) -> Tuning:
        """The settings every server shares, so that the comparison is like for like."""
        return Tuning(self.workers, self.threads, self.max_batch_size, self.max_batch_delay, self.cache_size)


def _parser(description: str, repo: Path) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    # wrk takes whole seconds only.
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run (default 3)")
    parser.add_argument(
        "--repetitions", type=int, default=3, help="runs per server and concurrency (default 3)"
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="seconds of unmeasured load per server (default 1)"
    )
    parser.add_argument(
        "--concurrency",
        default=None,
        help="comma-separated connection counts (default 16,64; 64 with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run (about 3 min): 2 s runs, 1 repetition, c=64, no memory phase, docs untouched",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes for every multi-process server"
    )
    parser.add_argument(
        "--threads", type=int, default=32, help="threads per worker for flaskserve and gunicorn"
    )
    parser.add_argument("--max-batch-size", type=int, default=64, help="rows per batch when batching is on")
    parser.add_argument("--max-batch-delay", type=float, default=5.0, help="ms a batch may wait to fill")
    parser.add_argument("--cache-size", type=int, default=1024, help="entries in flaskserve's cache (case 3)")
    parser.add_argument(
        "--cases",
        default=None,
        help="which cases to run (default 1,2,3,large,memory; without memory with --quick)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="extra attempts for a run that other processes on the machine disturbed (default 2)",
    )
    parser.add_argument(
        "--patience",
        type=float,
        default=60.0,
        help="seconds the whole run may wait for other processes to leave the CPU idle (default 60)",
    )
    parser.add_argument(
        "--skip-peer",
        action="append",
        choices=PEERS,
        default=[],
        help="leave a peer server out of the line-up (repeatable)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="Markdown report to write (default docs/benchmarks.md, none with --quick)",
    )
    parser.add_argument(
        "--results-dir", type=Path, default=repo / "bench" / "results", help="raw results folder"
    )
    parser.add_argument("--keep-scratch", action="store_true", help="keep models, configs and server logs")
    return parser


def _comma_separated(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_options(argv: Sequence[str] | None, *, description: str, repo: Path) -> Options:
    """Reads ``argv`` (the process's own arguments when None); exits with usage on a bad flag.

    ``repo`` is the repository root, which the default output paths hang off.
    """
    given = tuple(sys.argv[1:] if argv is None else argv)
    args = _parser(description, repo).parse_args(given)
    if args.quick:
        args.duration, args.repetitions, args.warmup, args.patience = 2, 1, 1, 10.0
    if args.concurrency is None:
        args.concurrency = "64" if args.quick else "16,64"
    if args.cases is None:
        args.cases = "1,2,3,large" if args.quick else "1,2,3,large,memory"
    if args.output is None and not args.quick:
        args.output = repo / "docs" / "benchmarks.md"
    return Options(
        duration=args.duration,
        repetitions=args.repetitions,
        warmup=args.warmup,
        concurrency=tuple(int(part) for part in args.concurrency.split(",") if part),
        quick=args.quick,
        workers=args.workers,
        threads=args.threads,
        max_batch_size=args.max_batch_size,
        max_batch_delay=args.max_batch_delay,
        cache_size=args.cache_size,
        cases=frozenset(_comma_separated(args.cases)),
        retries=args.retries,
        patience=args.patience,
        skip_peers=frozenset(args.skip_peer),
        output=args.output,
        results_dir=args.results_dir,
        keep_scratch=args.keep_scratch,
        given=given,
    )
