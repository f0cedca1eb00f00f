"""Coverage-guided fuzzing of the pure decoders with atheris (libFuzzer), one process per target.

    python tests/reliability/fuzz/run.py                     every target, 10 000 executions each
    python tests/reliability/fuzz/run.py --target v1 --runs 200000
    python tests/reliability/fuzz/run.py --seconds 60 --jobs 2
    python tests/reliability/fuzz/run.py --write-seeds       rewrite corpus/ from targets.seed_inputs()

libFuzzer ends its process when it stops, so each target runs in a child of
this script. A child instruments the decoders as it imports them,
trains the small models, and fuzzes from the seed corpus ``corpus/<target>/``;
the inputs it adds go to a temporary directory (or ``--keep-corpus``), so the
seed corpus stays as written. An input that breaks the rule (see ``targets.py``) stops the target
and is written to ``crashes/<target>/`` (``crash-``, ``timeout-`` or ``oom-``
and its SHA-1), which ``test_fuzz_decoders.py`` replays.

The table gives, per target, the executions, the seconds spent fuzzing (not
counting the child's start-up), the rate and the crashes. ``--update-doc FILE``
also writes it into that file's "Fuzzing the decoders" section, between its
table markers. The exit status is 1 when any target crashed or failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
CRASHES = HERE / "crashes"
DICTIONARY = HERE / "decoders.dict"
TARGET_NAMES = (
    "simple",
    "v1",
    "v2_json",
    "v2_binary",
    "binary",
    "mlflow_json",
    "mlflow_csv",
    "json_depth",
)
SECTION = "## Fuzzing the decoders"
TABLE_START = "<!-- fuzz-table:start -->"
TABLE_END = "<!-- fuzz-table:end -->"
#: Printed by a child once its models are ready, so that start-up is not counted as fuzzing time.
_SETUP_LINE = "fuzz-setup-seconds:"
_ARTIFACT = re.compile(r"^(crash|timeout|oom|leak|slow-unit)-[0-9a-f]+$")


@dataclass(frozen=True)
class Result:
    target: str
    executions: int
    seconds: float
    crashes: list[Path]
    returncode: int
    log: str

    @property
    def rate(self) -> float:
        return self.executions / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed(self) -> bool:
        return bool(self.crashes) or self.returncode != 0

    def summary(self) -> dict[str, object]:
        return {
            "target": self.target,
            "executions": self.executions,
            "seconds": round(self.seconds, 2),
            "crashes": [str(path) for path in self.crashes],
            "returncode": self.returncode,
            "log_tail": _tail(self.log) if self.failed else "",
        }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        return _child(args.child, args.libfuzzer)
    if args.write_seeds:
        _write_seeds()
        return 0
    budget = f"-max_total_time={args.seconds}" if args.seconds else f"-runs={args.runs}"

    def fuzz_one(name: str) -> Result:
        result = fuzz(
            name,
            budget,
            crash_dir=args.crash_dir,
            timeout=args.timeout,
            seed=args.seed,
            keep_corpus=args.keep_corpus,
        )
        print(_row(result), flush=True)
        if result.failed:
            print(_tail(result.log), file=sys.stderr, flush=True)
        return result

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(fuzz_one, args.target or TARGET_NAMES))
    if args.results:
        args.results.write_text(json.dumps([result.summary() for result in results], indent=2))
    table = markdown_table(results)
    print()
    print(table)
    if args.update_doc:
        command = "python tests/reliability/fuzz/run.py " + shlex.join(argv or sys.argv[1:])
        update_doc(args.update_doc, table, command.strip())
    return 1 if any(result.failed for result in results) else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", action="append", choices=TARGET_NAMES, help="repeatable; default: all")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--runs", type=int, default=10_000, help="executions per target (default 10000)")
    budget.add_argument("--seconds", type=int, help="seconds of fuzzing per target, instead of --runs")
    parser.add_argument("--jobs", type=int, default=1, help="targets fuzzed at once (default 1)")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take (default 10)")
    parser.add_argument("--seed", type=int, help="libFuzzer's random seed (default: a new one each run)")
    parser.add_argument("--crash-dir", type=Path, default=CRASHES, help="where crashing inputs go, by target")
    parser.add_argument("--keep-corpus", type=Path, help="keep the inputs the fuzzer adds here, by target")
    parser.add_argument("--results", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--update-doc", type=Path, help="write the table into this Markdown file's section")
    parser.add_argument("--write-seeds", action="store_true", help="rewrite corpus/ from the seed inputs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("libfuzzer", nargs="*", help=argparse.SUPPRESS)
    return parser


def fuzz(
    name: str,
    budget: str,
    *,
    crash_dir: Path,
    timeout: int,
    seed: int | None = None,
    keep_corpus: Path | None = None,
) -> Result:
    """Fuzz one target in a child process and collect what it reports."""
    artifacts = crash_dir / name
    artifacts.mkdir(parents=True, exist_ok=True)
    before = set(artifacts.iterdir())
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as scratch:
        found = scratch
        if keep_corpus is not None:
            found = str(keep_corpus / name)
            Path(found).mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            name,
            "--",
            budget,
            f"-artifact_prefix={artifacts}/",
            f"-timeout={timeout}",
            "-rss_limit_mb=2048",
            "-max_len=4096",
            f"-dict={DICTIONARY}",
            "-print_final_stats=1",
            *([f"-seed={seed}"] if seed is not None else []),
            found,
            str(CORPUS / name),
        ]
        # One thread for native pools: the fuzzer is single-threaded, and training starts faster.
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        started = time.perf_counter()
        process = subprocess.run(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=env,
            check=False,
        )
        wall = time.perf_counter() - started
    log = process.stdout
    setup = _number(log, _SETUP_LINE) or 0.0
    crashes = sorted(
        path for path in set(artifacts.iterdir()) - before if _ARTIFACT.match(path.name) is not None
    )
    return Result(
        target=name,
        executions=int(_number(log, "stat::number_of_executed_units:") or _last_count(log)),
        seconds=max(wall - setup, 0.0),
        crashes=crashes,
        returncode=process.returncode,
        log=log,
    )


def _child(name: str, libfuzzer_args: list[str]) -> int:
    import warnings

    import atheris

    started = time.perf_counter()
    # Coverage is collected from the decoders and the signature's validation only.
    with atheris.instrument_imports(include=["flaskserve.protocols", "flaskserve.models.signature"]):
        import targets
    import mutators

    targets.models()
    print(f"{_SETUP_LINE} {time.perf_counter() - started:.2f}", file=sys.stderr, flush=True)
    # As in the test suite: a warning raised while decoding is an error.
    warnings.simplefilter("error")
    mutator = mutators.MUTATORS.get(name)
    extra = {"custom_mutator": mutator} if mutator is not None else {}
    atheris.Setup([sys.argv[0], *libfuzzer_args], targets.TARGETS[name], **extra)
    atheris.Fuzz()
    return 0


def _write_seeds() -> None:
    sys.path.insert(0, str(HERE))
    import targets

    for name, inputs in targets.seed_inputs().items():
        folder = CORPUS / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for index, data in enumerate(inputs, start=1):
            (folder / f"seed-{index:02d}").write_bytes(data)
        print(f"{name}: {len(inputs)} seeds in {folder.relative_to(HERE.parents[2])}")


def _number(log: str, label: str) -> float | None:
    match = re.search(rf"^{re.escape(label)}\s*([0-9.]+)", log, re.MULTILINE)
    return float(match.group(1)) if match else None


def _last_count(log: str) -> int:
    """The last ``#N`` progress count libFuzzer printed (its final stats are missing after a crash)."""
    counts = re.findall(r"^#(\d+)\s", log, re.MULTILINE)
    return int(counts[-1]) if counts else 0


def _tail(log: str, lines: int = 60) -> str:
    """The end of a child's log, from the exception atheris reports when there is one."""
    start = log.rfind("=== Uncaught Python exception")
    return "\n".join(log[max(start, 0) :].rstrip().splitlines()[-lines:])


def _row(result: Result) -> str:
    status = "ok" if not result.failed else f"FAILED (exit {result.returncode})"
    crashes = "".join(f"\n    {path}" for path in result.crashes)
    return (
        f"{result.target:<12} {result.executions:>9} execs {result.seconds:>8.1f} s "
        f"{result.rate:>8.0f}/s  {len(result.crashes)} crashes  {status}{crashes}"
    )


def markdown_table(results: list[Result]) -> str:
    lines = [
        "| target | executions | seconds | exec/s | crashes |",
        "|---|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(
            f"| {result.target} | {result.executions:,} | {result.seconds:,.0f} | {result.rate:,.0f} | "
            f"{len(result.crashes)} |"
        )
    total = sum(result.executions for result in results)
    seconds = sum(result.seconds for result in results)
    crashes = sum(len(result.crashes) for result in results)
    lines.append(f"| **all** | **{total:,}** | **{seconds:,.0f}** | | **{crashes}** |")
    return "\n".join(lines)


def update_doc(path: Path, table: str, command: str) -> None:
    """Replace the table between the markers of the section, or append the section if it is missing."""
    measured = f"Measured on {time.strftime('%Y-%m-%d')} with `{command}`:"
    generated = f"{TABLE_START}\n{measured}\n\n{table}\n{TABLE_END}"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if TABLE_START in text and TABLE_END in text:
        head, _, rest = text.partition(TABLE_START)
        _, _, tail = rest.partition(TABLE_END)
        text = head + generated + tail
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + f"{SECTION}\n\n{generated}\n"
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
