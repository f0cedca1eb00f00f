"""The model repository extension under a real two-worker ``flaskserve serve``: every worker follows.

Each request goes on a fresh connection, so gunicorn may hand it to either
worker; the access log's ``pid`` field shows that both answered.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from flaskserve import testing
from live_server import RunningServer

pytestmark = pytest.mark.e2e

IRIS_ROW = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
INFER = "/v2/models/iris/infer"
REQUESTS = 30


def fan_out(server: RunningServer, *, count: int = REQUESTS) -> tuple[list[requests.Response], set[int]]:
    """``count`` iris inferences on fresh connections, then more until both workers have answered some.

    Returns every response and the pids of the workers that answered.
    """
    tag = uuid.uuid4().hex[:8]

    def infer(number: int) -> requests.Response:
        headers = {"Connection": "close", "X-Request-ID": f"{tag}-{number}"}
        return requests.post(server.url + INFER, json=IRIS_ROW, timeout=10, headers=headers)

    responses: list[requests.Response] = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        while True:
            responses += pool.map(infer, range(len(responses), len(responses) + count))
            pids = _answering_pids(server, tag, len(responses))
            if len(pids) == 2:
                return responses, pids
            assert len(responses) < 10 * count, f"only worker {pids} answered {len(responses)} requests"


def _answering_pids(server: RunningServer, tag: str, expected: int) -> set[int]:
    """Pids in the access lines of the tagged requests, once all of them are logged."""
    deadline = time.monotonic() + 5
    while True:
        records = [
            r
            for r in server.log_records()
            if r.get("logger") == "flaskserve.access" and str(r.get("request_id", "")).startswith(tag)
        ]
        if len(records) >= expected or time.monotonic() > deadline:
            return {int(r["pid"]) for r in records}
        time.sleep(0.05)


@pytest.fixture
def repo(repository: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(repository, tmp_path / "repo"))


def test_load_and_unload_reach_every_worker(
    start_server: Callable[..., RunningServer], repo: Path, iris_classifier: Any
) -> None:
    server = start_server(model_path=repo)

    assert server.post("/v2/repository/models/iris/unload").status_code == 200
    responses, pids = fan_out(server)
    assert {r.status_code for r in responses} == {404}
    assert {r.json()["code"] for r in responses} == {"model_not_found"}
    assert server.get("/v2/health/ready").status_code == 200

    assert server.post("/v2/repository/models/iris/load").status_code == 200
    responses, _ = fan_out(server)
    assert {(r.status_code, r.headers["X-Model-Version"]) for r in responses} == {(200, "2")}

    testing.save_model(iris_classifier, repo / "iris" / "3" / "model.skops")
    assert server.post("/v2/repository/models/iris/load", json={}).status_code == 200
    responses, pids = fan_out(server)
    assert {(r.status_code, r.headers["X-Model-Version"]) for r in responses} == {(200, "3")}
    assert len(pids) == 2

    index = server.post("/v2/repository/index", json={"ready": True}).json()
    assert [row["version"] for row in index if row["name"] == "iris"] == ["1", "2", "3"]


def test_a_refused_load_changes_no_worker(start_server: Callable[..., RunningServer], repo: Path) -> None:
    server = start_server(model_path=repo)
    (repo / "iris" / "3").mkdir()
    (repo / "iris" / "3" / "model.skops").write_bytes(b"not a model")

    refused = server.post("/v2/repository/models/iris/load")

    assert (refused.status_code, refused.json()["code"]) == (400, "model_load_failed")
    responses, _ = fan_out(server)
    assert {(r.status_code, r.headers["X-Model-Version"]) for r in responses} == {(200, "2")}
