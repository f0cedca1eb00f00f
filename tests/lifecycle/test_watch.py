"""``--watch``: versions appear, fail, roll back and go away while the server serves, one poll at a time.

Each ``watcher.look()`` is one poll of the repository folder. A version written
in place is taken once its files were the same on two looks in a row; one
published with ``flaskserve publish`` on the first look after it lands.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from flaskserve import testing
from flaskserve.cli import main
from flaskserve.lifecycle.watcher import Watcher
from flaskserve.models.policy import select
from flaskserve.settings import VersionPolicy
from metrics_text import labels, samples

pytestmark = pytest.mark.usefixtures("watcher")


def served(client: FlaskClient) -> tuple[str, float]:
    """(version, answer) of an unversioned prediction of ``linear``."""
    response = client.post("/models/linear/predict", json={"x": 0.5, "y": 0.5})
    assert response.status_code == 200, response.get_json()
    return response.headers["X-Model-Version"], float(response.get_json()["prediction"])


def index(client: FlaskClient) -> dict[str, tuple[str, str]]:
    """``linear``'s rows of the repository index: version -> (state, reason)."""
    rows = client.post("/v2/repository/index").get_json()
    return {r["version"]: (r["state"], r.get("reason", "")) for r in rows if r["name"] == "linear"}


def load_failures(client: FlaskClient, version: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    found = samples(text, "flaskserve_model_load_failures_total")
    return found.get(labels(model="linear", version=version), 0.0)


def settle(watcher: Watcher, looks: int = 2) -> None:
    for _ in range(looks):
        watcher.look()


def write_settings(models: Path, text: str) -> None:
    (models / "linear" / "model-settings.toml").write_text(text, encoding="utf-8")


def test_a_version_written_in_place_serves_only_once_its_files_stopped_changing(
    client: FlaskClient, watcher: Watcher, add_version: Callable[..., Path]
) -> None:
    watcher.look()
    add_version("2")

    watcher.look()
    assert served(client) == ("1", 1.0), "a version seen once may still be being written"
    assert index(client)["2"][0] == "UNAVAILABLE"

    watcher.look()
    assert served(client) == ("2", 2.0)
    assert {v: state for v, (state, _) in index(client).items()} == {"1": "READY", "2": "READY"}


def test_a_published_version_serves_on_the_first_look(
    client: FlaskClient, watcher: Watcher, models: Path, tmp_path: Path
) -> None:
    watcher.look()
    model_file = testing.save_model(testing.train_linear_xy(), tmp_path / "trained" / "model.skops")

    result = CliRunner().invoke(main, ["publish", str(model_file), str(models / "linear")])

    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"published {models / 'linear' / '2'}"
    watcher.look()
    version, prediction = served(client)
    assert version == "2"
    assert prediction == pytest.approx(1 + 2 * 0.5 + 2 * 0.5, abs=0.01)
    assert not [p for p in (models / "linear").iterdir() if p.name.startswith(".publish")]


def test_publish_never_overwrites_a_version_and_takes_only_model_files(models: Path, tmp_path: Path) -> None:
    model_file = testing.save_model(testing.train_linear_xy(), tmp_path / "model.skops")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")

    taken = CliRunner().invoke(main, ["publish", str(model_file), str(models / "linear"), "--version", "1"])
    not_a_model = CliRunner().invoke(main, ["publish", str(notes), str(models / "linear")])

    assert taken.exit_code != 0
    assert "version 1 of 'linear' exists already" in taken.output
    assert not_a_model.exit_code != 0
    assert "model file" in not_a_model.output
    assert sorted(p.name for p in (models / "linear").iterdir()) == ["1"]


def test_a_corrupt_version_never_serves_and_is_tried_again_only_when_its_files_change(
    client: FlaskClient, watcher: Watcher, models: Path, add_version: Callable[..., Path]
) -> None:
    corrupt = models / "linear" / "2" / "model.skops"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"PK\x03\x04 half a zip file")

    settle(watcher)
    assert served(client) == ("1", 1.0)
    state, reason = index(client)["2"]
    assert state == "UNAVAILABLE"
    assert reason.startswith("failed: ")
    assert load_failures(client, "2") == 1
    assert client.get("/v2/health/ready").status_code == 200

    settle(watcher, 3)
    assert load_failures(client, "2") == 1, "the same files must not be tried again"

    add_version("2")
    settle(watcher)
    assert served(client) == ("2", 2.0)
    assert index(client)["2"] == ("READY", "")


def test_a_version_replaced_by_a_corrupt_file_keeps_serving_its_previous_files(
    client: FlaskClient, watcher: Watcher, models: Path
) -> None:
    watcher.look()
    (models / "linear" / "1" / "model.skops").write_bytes(b"not a model at all")

    settle(watcher)

    assert served(client) == ("1", 1.0)
    state, reason = index(client)["1"]
    assert state == "READY"
    assert "serving its previous files" in reason


def test_pinning_a_version_rolls_back_and_unpinning_rolls_forward(
    client: FlaskClient, watcher: Watcher, models: Path, add_version: Callable[..., Path]
) -> None:
    add_version("2")
    settle(watcher)
    assert served(client) == ("2", 2.0)

    write_settings(models, '[versions]\nspecific = ["1"]\n')
    settle(watcher)
    assert served(client) == ("1", 1.0)
    assert index(client)["2"][0] == "UNAVAILABLE"

    (models / "linear" / "model-settings.toml").unlink()
    settle(watcher)
    assert served(client) == ("2", 2.0)


def test_latest_n_serves_only_the_newest_versions(
    client: FlaskClient, watcher: Watcher, models: Path, add_version: Callable[..., Path]
) -> None:
    add_version("2")
    add_version("3")
    write_settings(models, "[versions]\nlatest = 2\n")

    settle(watcher)

    assert {v: state for v, (state, _) in index(client).items()} == {
        "1": "UNAVAILABLE",
        "2": "READY",
        "3": "READY",
    }


@pytest.mark.parametrize(
    ("policy", "versions"),
    [
        pytest.param(VersionPolicy(), ["1", "2", "10"], id="all by default"),
        pytest.param(VersionPolicy(latest=1), ["10"], id="latest 1 counts numerically"),
        pytest.param(VersionPolicy(specific=["2", "7"]), ["2"], id="specific keeps those that exist"),
    ],
)
def test_version_policies_choose_as_tf_serving_does(policy: VersionPolicy, versions: list[str]) -> None:
    assert select(["10", "2", "1"], policy) == versions


def test_a_version_failing_its_sample_request_never_serves(
    client: FlaskClient, watcher: Watcher, models: Path, add_version: Callable[..., Path]
) -> None:
    write_settings(models, "[verify]\nsample = [{x = 0.0, y = 0.0}]\nexpected = [1.0]\ntolerance = 0.001\n")
    settle(watcher)
    add_version("2")

    settle(watcher)

    assert served(client) == ("1", 1.0)
    state, reason = index(client)["2"]
    assert state == "UNAVAILABLE"
    assert "expected [1.0]" in reason


def test_a_changed_signature_is_refused_when_the_model_asks_for_the_same(
    client: FlaskClient, watcher: Watcher, models: Path, add_version: Callable[..., Path]
) -> None:
    write_settings(models, "[verify]\nrequire_same_signature = true\n")
    settle(watcher)
    add_version("2", features=("x", "y", "z"))

    settle(watcher)

    assert served(client) == ("1", 1.0)
    assert "changes its signature" in index(client)["2"][1]


def test_a_changed_signature_is_logged_loudly_and_served_otherwise(
    client: FlaskClient, watcher: Watcher, add_version: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    add_version("2", features=("x", "y", "z"))

    with caplog.at_level(logging.WARNING, logger="flaskserve.models"):
        settle(watcher)

    assert [r for r in caplog.records if r.getMessage().startswith("MODEL SIGNATURE CHANGED")]
    response = client.post("/models/linear/predict", json={"x": 0.5, "y": 0.5, "z": 0.5})
    assert response.headers["X-Model-Version"] == "2"


def test_a_removed_version_stops_serving_and_a_removed_model_leaves_the_replica_ready(
    client: FlaskClient, watcher: Watcher, models: Path, add_version: Callable[..., Path]
) -> None:
    add_version("2")
    settle(watcher)
    shutil.rmtree(models / "linear" / "2")

    settle(watcher)
    assert served(client) == ("1", 1.0)

    shutil.rmtree(models / "linear")
    watcher.look()
    assert client.post("/models/linear/predict", json={"x": 0, "y": 0}).status_code == 404
    assert client.get("/v2/health/ready").status_code == 200


def test_a_model_whose_only_version_failed_makes_the_replica_unready(
    client: FlaskClient, watcher: Watcher, models: Path, watched_app: Flask
) -> None:
    broken = models / "broken" / "1" / "model.skops"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"garbage")

    settle(watcher, 3)

    assert client.get("/v2/health/ready").status_code == 503
    assert served(client) == ("1", 1.0), "the other model keeps serving"
