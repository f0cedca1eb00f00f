"""The benchmark's targets are checked as the performance issue states them.

``make bench`` writes ``docs/benchmarks.md`` with every target as a row (measured, required,
pass or miss); these tests feed ``bench/goals.py`` summaries of a made-up run and read the verdicts,
so a target that silently compares the wrong rows, or passes when it should miss, is caught here
rather than in a ten-minute run.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))
import goals  # noqa: E402
from results import Summary  # noqa: E402

sys.path.remove(str(BENCH))

CONCURRENCIES = (16, 64)


def summary(requests_per_second: float, rows: int = 1, p99_ms: float = 10.0) -> Summary:
    return Summary(requests_per_second, requests_per_second * rows, 1.0, p99_ms, 0.0, 3, 0, 0.0)


def a_run(**overrides: Summary) -> dict[str, Summary]:
    """Every role of a full run, by target key, flaskserve on gunicorn only; ``overrides`` replace rows."""
    rows = {
        "hello": summary(3000),
        "hello-granian": summary(20000),
        "flask-hello": summary(1500),
        "c1-flaskserve": summary(8000),
        "c1-gunicorn": summary(600),
        "c1-mlserver-pw2": summary(400),
        "c1-litserve": summary(700),
        "c3-cache": summary(12000),
        "c4-json": summary(2000, rows=1000),
        "c4-binary": summary(3000, rows=1000),
        "c2-batched": summary(2000, p99_ms=40.0),
        "c2-gunicorn": summary(100),
        "c2-mlserver-pw0-batch": summary(500),
        "c2-bentoml-batch": summary(600),
    }
    return rows | overrides


ROLES: Mapping[str, Sequence[str]] = {
    "hello": ["hello"],
    "hello-granian": ["hello-granian"],
    "flask-hello": ["flask-hello"],
    "c1-flaskserve": ["c1-flaskserve"],
    "c1-gunicorn": ["c1-gunicorn"],
    "c1-peers": ["c1-mlserver-pw2", "c1-litserve"],
    "c3-cache": ["c3-cache"],
    "c4-json": ["c4-json"],
    "c4-binary": ["c4-binary"],
    "c2-batched": ["c2-batched"],
    "c2-gunicorn": ["c2-gunicorn"],
    "c2-peers-batched": ["c2-mlserver-pw0-batch", "c2-bentoml-batch"],
}


def verdicts(rows: Mapping[str, Summary], roles: Mapping[str, Sequence[str]] = ROLES) -> dict[str, Any]:
    """Each target's verdict at concurrency 64, by its wording."""

    def lookup(key: str, concurrency: int) -> Summary | None:
        return rows.get(key)

    setting = goals.Goals(CONCURRENCIES, 64, 5.0, 30.0, None, ())
    checks = goals.check_targets(lookup, roles, setting)
    return {check.goal: check for check in checks if check.where in ("concurrency 64", "1 → 4 workers")}


def test_a_run_that_meets_every_target_passes_each_one() -> None:
    found = verdicts(a_run())
    assert {goal: check.passed for goal, check in found.items()} == {
        "flaskserve vs raw-WSGI hello-world on granian": True,
        "flaskserve vs the best peer": True,
        "flaskserve vs Flask hello-world on the same server": True,
        "cache hits on flaskserve vs raw-WSGI hello-world on granian": True,
        "1,000-row JSON requests on flaskserve": True,
        "V2 binary tensors vs 1,000-row JSON on flaskserve": True,
        "batched flaskserve p99": True,
        "batched flaskserve vs the best peer with batching": True,
        "batched flaskserve vs tutorial under gunicorn": True,
        "PSS growth per extra worker": None,
    }


@pytest.mark.parametrize(
    ("override", "goal", "measured"),
    [
        ({"c1-flaskserve": summary(6000)}, "flaskserve vs raw-WSGI hello-world on granian", "0.30x"),
        ({"c1-litserve": summary(900)}, "flaskserve vs the best peer", "8.89x"),
        ({"flask-hello": summary(4500)}, "flaskserve vs Flask hello-world on the same server", "1.78x"),
        ({"c3-cache": summary(9000)}, "cache hits on flaskserve vs raw-WSGI hello-world on granian", "0.45x"),
        ({"c4-json": summary(1400, rows=1000)}, "1,000-row JSON requests on flaskserve", "1,400,000 rows/s"),
        (
            {"c4-binary": summary(1900, rows=1000)},
            "V2 binary tensors vs 1,000-row JSON on flaskserve",
            "0.95x",
        ),
        ({"c2-batched": summary(2000, p99_ms=56.0)}, "batched flaskserve p99", "56.0 ms"),
        ({"c2-bentoml-batch": summary(700)}, "batched flaskserve vs the best peer with batching", "2.86x"),
        ({"c2-gunicorn": summary(200)}, "batched flaskserve vs tutorial under gunicorn", "10.00x"),
    ],
)
def test_a_run_short_of_a_target_misses_it(override: dict[str, Summary], goal: str, measured: str) -> None:
    check = verdicts(a_run(**override))[goal]
    assert (check.measured, check.passed) == (measured, False)


def test_the_batched_p99_budget_is_the_delay_a_full_batch_and_the_allowance() -> None:
    check = verdicts(a_run())["batched flaskserve p99"]
    assert check.required == f"≤ {5.0 + 30.0 + goals.P99_ALLOWANCE_MS:.1f} ms"


def test_a_target_whose_rows_were_not_measured_is_neither_pass_nor_miss() -> None:
    roles = {role: keys for role, keys in ROLES.items() if role != "c1-peers"}
    check = verdicts(a_run(), roles)["flaskserve vs the best peer"]
    assert (check.measured, check.passed) == ("not measured", None)


def test_granian_is_held_to_the_same_targets_against_its_own_flask_ceiling() -> None:
    rows = a_run(**{"c1-flaskserve-granian": summary(9000), "flask-hello-granian": summary(5000)})
    roles = {
        **ROLES,
        "c1-flaskserve-granian": ["c1-flaskserve-granian"],
        "flask-hello-granian": ["flask-hello-granian"],
    }
    found = verdicts(rows, roles)
    check = found["flaskserve on granian vs Flask hello-world on the same server"]
    assert (check.measured, check.passed) == ("1.80x", False)
    assert found["flaskserve on granian vs raw-WSGI hello-world on granian"].measured == "0.45x"
