"""The model repository extension: index, load and unload while serving, in one process and across apps."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flaskserve import testing
from flaskserve.app import create_app
from flaskserve.models.trust import file_sha256
from flaskserve.security import audit
from flaskserve.security.keys import KeyStore
from flaskserve.settings import Settings, load_settings

IRIS_ROW = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
INDEX = "/v2/repository/index"


def load_url(name: str) -> str:
    return f"/v2/repository/models/{name}/load"


def unload_url(name: str) -> str:
    return f"/v2/repository/models/{name}/unload"


@pytest.fixture
def repo(repository: Path, tmp_path: Path) -> Path:
    """A copy of the test repository that a test may change."""
    return Path(shutil.copytree(repository, tmp_path / "repo"))


@pytest.fixture
def make_app(repo: Path) -> Callable[..., Flask]:
    def build(run_dir: Path | None = None, **overrides: Any) -> Flask:
        values: dict[str, Any] = {"model_path": repo, "allow_pickle": True, "default_model": "linear"}
        values.update(overrides)
        return create_app(load_settings(None, **values), run_dir=run_dir)

    return build


@pytest.fixture
def client(make_app: Callable[..., Flask]) -> FlaskClient:
    return make_app().test_client()


def index(client: FlaskClient, **body: Any) -> list[dict[str, Any]]:
    response = client.post(INDEX, json=body) if body else client.post(INDEX)
    assert response.status_code == 200, response.get_json()
    rows: list[dict[str, Any]] = response.get_json()
    return rows


def rows_of(rows: list[dict[str, Any]], name: str) -> list[tuple[str | None, str, str]]:
    return [(r.get("version"), r["state"], r["reason"]) for r in rows if r["name"] == name]


def add_version(repo: Path, name: str, version: str, model: Any, suffix: str = ".skops") -> Path:
    return testing.save_model(model, repo / name / version / f"model{suffix}")


def infer_iris(client: FlaskClient) -> Any:
    return client.post("/v2/models/iris/infer", json=IRIS_ROW)


def test_the_index_lists_served_versions_and_folders_only_on_disk(
    client: FlaskClient, repo: Path, linear_xy: Any
) -> None:
    add_version(repo, "newcomer", "1", linear_xy)

    rows = index(client)

    assert rows_of(rows, "iris") == [("1", "READY", ""), ("2", "READY", "")]
    assert rows_of(rows, "newcomer") == [("1", "UNAVAILABLE", "not loaded")]
    assert {r["name"] for r in index(client, ready=True)} == {"iris", "diabetes", "linear", "exploding"}
    assert client.get("/v2").get_json()["extensions"][-1] == "model_repository"


def test_loading_a_new_version_serves_it_to_unversioned_requests(
    client: FlaskClient, repo: Path, iris_classifier: Any
) -> None:
    add_version(repo, "iris", "3", iris_classifier)
    assert ("3", "UNAVAILABLE", "not loaded") in rows_of(index(client), "iris")

    response = client.post(load_url("iris"), json={"parameters": {}})

    assert (response.status_code, response.get_json()) == (200, {})
    assert infer_iris(client).headers["X-Model-Version"] == "3"
    assert [v for v, state, _ in rows_of(index(client), "iris")] == ["1", "2", "3"]


def test_an_unloaded_model_is_gone_but_the_server_stays_ready(client: FlaskClient) -> None:
    assert client.post(unload_url("iris")).status_code == 200

    gone = infer_iris(client)
    assert (gone.status_code, gone.get_json()["code"]) == (404, "model_not_found")
    assert client.get("/v2/health/ready").status_code == 200
    assert rows_of(index(client), "iris") == [
        ("1", "UNAVAILABLE", "unloaded"),
        ("2", "UNAVAILABLE", "unloaded"),
    ]
    again = client.post(unload_url("iris"))
    assert (again.status_code, again.get_json()["code"]) == (404, "model_not_found")

    assert client.post(load_url("iris")).status_code == 200
    assert infer_iris(client).status_code == 200


def test_a_refused_load_leaves_the_served_versions_serving(
    make_app: Callable[..., Flask], repo: Path, iris_classifier: Any, caplog: pytest.LogCaptureFixture
) -> None:
    shutil.rmtree(repo / "exploding")
    client = make_app(allow_pickle=False).test_client()
    pickle = add_version(repo, "iris", "3", iris_classifier, ".joblib")
    caplog.set_level(logging.INFO, logger=audit.AUDIT_LOGGER)

    response = client.post(load_url("iris"))

    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == "untrusted_model"
    assert "--allow-pickle" in body["error"]
    assert str(repo) not in body["error"]
    served = infer_iris(client)
    assert (served.status_code, served.headers["X-Model-Version"]) == (200, "2")
    [refused] = [r for r in caplog.records if r.name == audit.AUDIT_LOGGER]
    assert (refused.outcome, refused.model) == ("refused", "iris")  # type: ignore[attr-defined]
    # The digest to pin, if the operator trusts the file, is in the models log.
    [logged] = [r for r in caplog.records if r.getMessage() == "model refused"]
    assert logged.sha256 == file_sha256(pickle)  # type: ignore[attr-defined]


def test_a_corrupt_file_is_a_400_with_the_loaders_code(client: FlaskClient, repo: Path) -> None:
    (repo / "linear" / "2").mkdir()
    (repo / "linear" / "2" / "model.skops").write_bytes(b"not a zip file")

    response = client.post(load_url("linear"))

    assert (response.status_code, response.get_json()["code"]) == (400, "model_load_failed")
    assert client.post("/predict", json={"x": 1, "y": 2}).status_code == 200


@pytest.mark.parametrize(
    ("name", "status"),
    [
        pytest.param("nothere", 404, id="a name the repository lacks"),
        pytest.param("..", 400, id="parent folder"),
        pytest.param(".hidden", 400, id="leading dot"),
        pytest.param("a%00b", 400, id="NUL"),
        pytest.param("a%0Ab", 400, id="newline"),
        pytest.param("a%5Cb", 400, id="backslash"),
        pytest.param("%E2%80%AEiris", 400, id="right-to-left override"),
        pytest.param("x" * 65, 400, id="too long"),
    ],
)
def test_names_are_checked_before_any_path_is_built(client: FlaskClient, name: str, status: int) -> None:
    for url in (load_url(name), unload_url(name)):
        response = client.post(url)

        assert response.status_code == status
        assert "error" in response.get_json()


def test_a_name_with_a_slash_matches_no_route(client: FlaskClient) -> None:
    assert client.post("/v2/repository/models/a%2F..%2Fb/load").status_code == 404


@pytest.mark.parametrize(
    ("url", "body"),
    [
        pytest.param(load_url("iris"), {"parameters": {"config": "{}"}}, id="unknown load parameter"),
        pytest.param(load_url("iris"), {"force": True}, id="unknown load field"),
        pytest.param(
            unload_url("iris"), {"parameters": {"unload_dependents": True}}, id="unknown unload parameter"
        ),
        pytest.param(INDEX, {"ready": "yes"}, id="ready is not a boolean"),
        pytest.param(INDEX, {"ready": True, "limit": 3}, id="unknown index field"),
    ],
)
def test_requests_the_server_cannot_honour_are_400(client: FlaskClient, url: str, body: Any) -> None:
    response = client.post(url, json=body)

    assert response.status_code == 400
    assert response.get_json()["code"] == "malformed_request"
    assert infer_iris(client).status_code == 200


def test_a_single_file_server_reloads_only_its_model(tmp_path: Path, linear_xy: Any) -> None:
    path = testing.save_model(linear_xy, tmp_path / "single" / "linear.skops")
    client = create_app(load_settings(None, model_path=path)).test_client()

    assert client.post(unload_url("linear")).status_code == 200
    assert rows_of(index(client), "linear") == [("1", "UNAVAILABLE", "unloaded")]
    assert client.post(load_url("linear")).status_code == 200
    assert client.post("/predict", json={"x": 1, "y": 2}).status_code == 200
    other = client.post(load_url("iris"))
    assert other.status_code == 404
    assert "no repository folder" in other.get_json()["error"]


def test_actions_need_the_admin_scope_and_are_audited_with_the_key_name(
    make_app: Callable[..., Flask], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = KeyStore.load(tmp_path / "keys.json")
    keys = {scope: store.create(f"{scope}-key", [scope]) for scope in ("admin", "read", "predict")}
    store.save()
    client = make_app(keys_file=tmp_path / "keys.json").test_client()
    caplog.set_level(logging.INFO, logger=audit.AUDIT_LOGGER)

    def post(url: str, key: str) -> int:
        return client.post(url, headers={"Authorization": f"Bearer {keys[key]}"}).status_code

    assert [post(load_url("linear"), k) for k in ("predict", "read")] == [403, 403]
    assert [post(unload_url("linear"), k) for k in ("predict", "read")] == [403, 403]
    assert post(INDEX, "read") == 200
    assert post(INDEX, "predict") == 403
    assert post(load_url("linear"), "admin") == 200

    [loaded] = [r for r in caplog.records if r.name == audit.AUDIT_LOGGER]
    assert (loaded.actor, loaded.action, loaded.model, loaded.version) == (  # type: ignore[attr-defined]
        "admin-key",
        "load",
        "linear",
        "1",
    )
    assert len(loaded.sha256) == 64  # type: ignore[attr-defined]


def test_loads_are_counted_in_the_metrics(client: FlaskClient) -> None:
    def loads() -> float:
        text = client.get("/metrics").get_data(as_text=True)
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("flaskserve_model_loads_total{") and 'model="iris"' in line
        )

    before = loads()
    assert client.post(load_url("iris")).status_code == 200
    assert loads() == before + 2


# -- across processes: apps that share a run directory stand in for gunicorn's workers ----------


@pytest.fixture
def shared_run_dir(tmp_path: Path) -> Path:
    """The run directory two apps share, as two workers of one server do."""
    path = tmp_path / "run"
    path.mkdir()
    return path


def test_an_action_in_one_worker_reaches_the_others(
    shared_run_dir: Path, make_app: Callable[..., Flask], repo: Path, iris_classifier: Any
) -> None:
    first, second = (
        make_app(run_dir=shared_run_dir).test_client(),
        make_app(run_dir=shared_run_dir).test_client(),
    )

    assert first.post(unload_url("iris")).status_code == 200
    assert infer_iris(second).status_code == 404
    assert rows_of(index(second), "iris")[0][2] == "unloaded"

    add_version(repo, "iris", "3", iris_classifier)
    assert second.post(load_url("iris")).status_code == 200
    assert infer_iris(first).headers["X-Model-Version"] == "3"

    # A worker started later (gunicorn replacing one that died) replays the journal from the start.
    late = make_app(run_dir=shared_run_dir).test_client()
    assert infer_iris(late).headers["X-Model-Version"] == "3"


def test_a_worker_repeats_exactly_the_versions_the_acting_worker_loaded(
    shared_run_dir: Path, make_app: Callable[..., Flask], repo: Path, iris_classifier: Any
) -> None:
    first, second = (
        make_app(run_dir=shared_run_dir).test_client(),
        make_app(run_dir=shared_run_dir).test_client(),
    )
    assert first.post(load_url("iris")).status_code == 200

    add_version(repo, "iris", "3", iris_classifier)

    assert infer_iris(second).headers["X-Model-Version"] == "2"


def test_a_torn_journal_line_is_skipped(shared_run_dir: Path, make_app: Callable[..., Flask]) -> None:
    first, second = (
        make_app(run_dir=shared_run_dir).test_client(),
        make_app(run_dir=shared_run_dir).test_client(),
    )
    with (shared_run_dir / "repository.journal").open("ab") as journal:
        journal.write(b'{"seq": 1, "act')

    assert first.post(unload_url("iris")).status_code == 200

    assert infer_iris(second).status_code == 404


def test_without_a_run_directory_no_hook_runs_per_request(make_app: Callable[..., Flask]) -> None:
    app = make_app()

    hooks = [getattr(hook, "__qualname__", "") for hook in app.before_request_funcs.get(None, [])]
    assert "Reloader.before_request" not in hooks


def test_with_a_run_directory_the_hook_is_registered(
    shared_run_dir: Path, make_app: Callable[..., Flask]
) -> None:
    app = make_app(run_dir=shared_run_dir)

    hooks = [getattr(hook, "__qualname__", "") for hook in app.before_request_funcs.get(None, [])]
    assert "Reloader.before_request" in hooks


def test_settings_ignore_the_run_directory_variable(shared_run_dir: Path) -> None:
    assert isinstance(load_settings(None), Settings)
