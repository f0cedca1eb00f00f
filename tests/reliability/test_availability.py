"""The availability harness in its short form: zero failed requests through every change.

CI runs it under gunicorn, the default server, to stay within its time budget (a
server's start and stop are most of it); ``AVAILABILITY_SERVERS="gunicorn granian"``
adds granian. ``make availability`` runs the long form (10 rollouts, 3 HUPs, worker
kills) under both and writes its figures into docs/operations.md; see ``availability.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from availability import SHORT, run

pytestmark = pytest.mark.e2e

SERVERS = os.environ.get("AVAILABILITY_SERVERS", "gunicorn").split()


@pytest.mark.parametrize("server_name", SERVERS)
def test_no_request_fails_while_models_roll_out_fail_roll_back_and_the_server_reloads(
    server_name: str, tmp_path: Path
) -> None:
    steps = {step.name: step for step in run(server_name, tmp_path, SHORT)}

    failures = {name: dict(step.outcomes) for name, step in steps.items() if step.failed}
    assert not failures, f"failed requests by step: {failures}"
    assert len(steps["rollout"].converged_s) == SHORT.rollouts, steps["rollout"].notes
    assert steps["corrupt"].notes[0].startswith("index: UNAVAILABLE (failed"), steps["corrupt"].notes
    assert steps["corrupt"].notes[1] == "answers from the corrupt version: 0"
    assert steps["slow copy"].notes[0] == "answers from it before the copy ended: 0"
    assert len(steps["slow copy"].converged_s) == 1, steps["slow copy"].notes
    assert len(steps["pin"].converged_s) == 2, steps["pin"].notes
    assert len(steps["revoke"].converged_s) == 1, steps["revoke"].notes
    assert all(step.records for step in steps.values())
