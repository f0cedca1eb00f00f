"""The decoders refuse any input only with errors of the tree: fuzzing briefly, and replaying what it found.

Every target of ``fuzz/targets.py`` is fuzzed for a few thousand executions in
a child process of its own (libFuzzer ends the process it runs in), and every
seed and every saved crash is replayed through the target directly. The long
run is ``make fuzz`` (docs/reliability.md, "Fuzzing the decoders").
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fuzz import run, targets

from flaskserve.errors import LimitExceeded, MalformedRequest
from flaskserve.protocols import mlflow, payload
from flaskserve.protocols.wire import WireRequest

#: Executions per target in the short run; with start-up, the file stays well under a minute.
RUNS = 3000


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, dict[str, Any]], Path]:
    """Every target fuzzed ``RUNS`` times, two at a time; crashes go to a temporary folder."""
    folder = tmp_path_factory.mktemp("fuzz")
    results = folder / "results.json"
    command = [sys.executable, str(Path(run.__file__)), "--runs", str(RUNS), "--jobs", "2"]
    command += ["--crash-dir", str(folder / "crashes"), "--results", str(results)]
    subprocess.run(command, capture_output=True, timeout=300, check=False)
    return {result["target"]: result for result in json.loads(results.read_text())}, folder


def test_every_target_has_seeds() -> None:
    assert set(targets.TARGETS) == set(run.TARGET_NAMES)
    assert {path.name for path in run.CORPUS.iterdir() if any(path.iterdir())} == set(targets.TARGETS)


@pytest.mark.parametrize("name", run.TARGET_NAMES)
def test_a_short_fuzzing_run_finds_no_crash(
    name: str, short_run: tuple[dict[str, dict[str, Any]], Path]
) -> None:
    results, folder = short_run
    result = results[name]

    assert not result["crashes"], (
        f"fuzzing '{name}' found crashes; keep each input of {folder / 'crashes' / name} in "
        f"tests/reliability/fuzz/crashes/{name}/ as a regression case\n{result['log_tail']}"
    )
    assert result["returncode"] == 0, result["log_tail"]
    assert result["executions"] == RUNS


def saved_inputs(folder: Path) -> list[Any]:
    return [
        pytest.param(path.parent.name, path, id=f"{path.parent.name}/{path.name}")
        for path in sorted(folder.glob("*/*"))
        if path.is_file()
    ]


@pytest.mark.parametrize(("name", "path"), saved_inputs(run.CORPUS) + saved_inputs(run.CRASHES))
def test_a_saved_input_decodes_or_is_refused_with_the_error_tree(name: str, path: Path) -> None:
    targets.TARGETS[name](path.read_bytes())


#: Seconds a large hostile body may take. Each body below took 10 s or more while the work done
#: for it grew faster than its size (a Python loop per quote; a header scanned once per column).
HOSTILE_BUDGET_S = 5.0
_WIDE_HEADER = ",".join([f"c{i}" for i in range(20_000)] + ["c19999"]).encode() + b"\n"


@pytest.mark.parametrize(
    "decode",
    [
        pytest.param(
            lambda: payload.decode_json(b"[" * 40 + b'"' * (16 * 1024 * 1024 - 41) + b"\\", max_depth=32),
            id="16 MB of quotes after one backslash",
        ),
        pytest.param(
            lambda: payload.decode_json(b"[" * 40 + b'\\"' * (8 * 1024 * 1024 - 20), max_depth=32),
            id="16 MB of escaped quotes",
        ),
        pytest.param(
            lambda: mlflow.PROTOCOL.decode(
                WireRequest(_WIDE_HEADER, mlflow.CSV), targets.models()["xy"], targets.LIMITS
            ),
            id="a CSV header of 20000 columns whose last one repeats",
        ),
    ],
)
def test_a_large_hostile_body_is_refused_in_linear_time(decode: Any) -> None:
    targets.models()
    started = time.perf_counter()

    with pytest.raises((LimitExceeded, MalformedRequest)):
        decode()

    assert time.perf_counter() - started < HOSTILE_BUDGET_S
