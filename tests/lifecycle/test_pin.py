"""Pinning a version through the repository API: every worker serves it alone until it is unpinned.

Two apps sharing a run directory stand for two workers, as in ``test_watch_workers.py``:
the pin is made through one of them and answered by the other.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flaskserve.app import create_app
from flaskserve.runtime import get_runtime
from flaskserve.security.keys import KeyStore
from flaskserve.settings import load_settings


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    store = KeyStore.load(tmp_path / "keys.json")
    created = {scope: store.create(f"{scope}-key", [scope]) for scope in ("admin", "predict")}
    store.save()
    return created


@pytest.fixture
def workers(
    models: Path, tmp_path: Path, keys: dict[str, str], add_version: Callable[..., Path]
) -> list[Flask]:
    add_version("2")
    add_version("3")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    settings = load_settings(None, model_path=models, watch=True, keys_file=tmp_path / "keys.json")
    return [create_app(settings, run_dir=run_dir) for _ in range(2)]


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _answering_version(client: FlaskClient, key: str) -> str:
    response = client.post("/models/linear/predict", json={"x": 0, "y": 0}, headers=_as(key))
    assert response.status_code == 200, response.get_json()
    return response.headers["X-Model-Version"]


def _policy(client: FlaskClient, key: str) -> set[tuple[Any, Any]]:
    rows = client.post("/v2/repository/index", headers=_as(key)).get_json()
    return {(row.get("policy"), row.get("policy_source")) for row in rows if row["name"] == "linear"}


def test_a_pin_is_answered_by_every_worker_and_an_unpin_gives_the_policy_back(
    workers: list[Flask], keys: dict[str, str]
) -> None:
    acting, other = (app.test_client() for app in workers)
    assert {_answering_version(c, keys["predict"]) for c in (acting, other)} == {"3"}

    pinned = acting.post(
        "/v2/repository/models/linear/pin", json={"version": "1"}, headers=_as(keys["admin"])
    )

    assert pinned.status_code == 200, pinned.get_json()
    assert {_answering_version(c, keys["predict"]) for c in (acting, other)} == {"1"}
    versions = other.get("/v2/models/linear/versions/3/ready", headers=_as(keys["admin"]))
    assert versions.status_code == 404  # served alone: the other versions left the registry
    assert _policy(other, keys["admin"]) == {("pinned 1", "api")}

    unpinned = other.post("/v2/repository/models/linear/unpin", headers=_as(keys["admin"]))

    assert unpinned.status_code == 200, unpinned.get_json()
    assert {_answering_version(c, keys["predict"]) for c in (acting, other)} == {"3"}
    assert _policy(acting, keys["admin"]) == {("all", "default")}


def test_a_worker_started_after_the_pin_replays_it(
    workers: list[Flask], keys: dict[str, str], models: Path, tmp_path: Path
) -> None:
    workers[0].test_client().post(
        "/v2/repository/models/linear/pin", json={"version": "2"}, headers=_as(keys["admin"])
    )
    settings = get_runtime(workers[0]).settings
    late = create_app(settings, run_dir=tmp_path / "run").test_client()

    assert _answering_version(late, keys["predict"]) == "2"
    assert _policy(late, keys["admin"]) == {("pinned 2", "api")}


def test_a_change_of_the_settings_file_lifts_the_api_pin(
    workers: list[Flask], keys: dict[str, str], models: Path
) -> None:
    watcher = get_runtime(workers[0]).watcher
    watcher.look()
    watcher.look()
    workers[0].test_client().post(
        "/v2/repository/models/linear/pin", json={"version": "1"}, headers=_as(keys["admin"])
    )

    (models / "linear" / "model-settings.toml").write_text("[versions]\nlatest = 1\n")
    watcher.look()
    watcher.look()  # a file written in place is taken once it stayed the same for a look

    other = workers[1].test_client()
    assert _answering_version(other, keys["predict"]) == "3"
    assert _policy(other, keys["admin"]) == {("latest 1", "settings")}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        pytest.param({"version": "9"}, 404, "version_not_found", id="a version the folder lacks"),
        pytest.param({"version": "two"}, 400, "malformed_request", id="not a version number"),
        pytest.param({"version": 3}, 400, "malformed_request", id="a number, not a string"),
    ],
)
def test_a_pin_that_cannot_be_served_is_refused_and_nothing_changes(
    workers: list[Flask], keys: dict[str, str], body: dict[str, str], status: int, code: str
) -> None:
    client = workers[0].test_client()

    response = client.post("/v2/repository/models/linear/pin", json=body, headers=_as(keys["admin"]))

    assert response.status_code == status
    assert response.get_json()["code"] == code
    assert _answering_version(workers[1].test_client(), keys["predict"]) == "3"


@pytest.mark.parametrize(
    ("action", "body"),
    [pytest.param("pin", {"version": "1"}, id="pin"), pytest.param("unpin", None, id="unpin")],
)
def test_a_model_the_repository_lacks_answers_404(
    workers: list[Flask], keys: dict[str, str], action: str, body: dict[str, str] | None
) -> None:
    client = workers[0].test_client()

    response = client.post(f"/v2/repository/models/absent/{action}", json=body, headers=_as(keys["admin"]))

    assert response.status_code == 404
    assert response.get_json()["code"] == "model_not_found"


@pytest.mark.parametrize("action", ["pin", "unpin"])
def test_pin_and_unpin_need_the_admin_scope(workers: list[Flask], keys: dict[str, str], action: str) -> None:
    client = workers[0].test_client()

    response = client.post(
        f"/v2/repository/models/linear/{action}", json={"version": "1"}, headers=_as(keys["predict"])
    )

    assert response.status_code == 403
    assert _answering_version(client, keys["predict"]) == "3"


def test_a_pin_without_a_version_freezes_the_version_that_answers_now(
    workers: list[Flask], keys: dict[str, str], add_version: Callable[..., Path]
) -> None:
    watcher = get_runtime(workers[0]).watcher
    watcher.look()
    watcher.look()
    frozen = workers[0].test_client().post("/v2/repository/models/linear/pin", headers=_as(keys["admin"]))
    assert frozen.status_code == 200, frozen.get_json()

    add_version("4")
    watcher.look()
    watcher.look()

    assert _answering_version(workers[1].test_client(), keys["predict"]) == "3"
    assert _policy(workers[1].test_client(), keys["admin"]) == {("pinned 3", "api")}
