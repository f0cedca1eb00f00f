"""``flaskserve pin`` and ``unpin`` write the pin into the model's settings file, which a watcher follows.

The watcher's :meth:`~flaskserve.lifecycle.watcher.Watcher.look` is called by the
tests: one call is one poll.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from flaskserve.cli import main
from flaskserve.lifecycle.watcher import Watcher

SETTINGS = """# the iris team's settings
default_method = "predict"

[versions]
latest = 2  # keep one to roll back to

[verify]
sample = [
  [0, 0],
]
"""


@pytest.fixture
def three_versions(models: Path, add_version: Callable[..., Path]) -> Path:
    add_version("2")
    add_version("3")
    return models / "linear"


def _answering_version(client: FlaskClient) -> str:
    response = client.post("/models/linear/predict", json={"x": 0, "y": 0})
    assert response.status_code == 200, response.get_json()
    return response.headers["X-Model-Version"]


def test_pin_keeps_the_rest_of_the_file_and_is_served_from_the_next_look(
    three_versions: Path, watcher: Watcher, client: FlaskClient
) -> None:
    settings_file = three_versions / "model-settings.toml"
    settings_file.write_text(SETTINGS)
    watcher.look()
    watcher.look()
    assert _answering_version(client) == "3"

    result = CliRunner().invoke(main, ["pin", str(three_versions), "1"])

    assert result.exit_code == 0, result.output
    assert "pinned linear to version 1" in result.output
    assert settings_file.read_text() == SETTINGS.replace("[versions]\n", '[versions]\npin = "1"\n')
    watcher.look()
    assert _answering_version(client) == "1"


def test_unpin_gives_the_policy_below_the_pin_back(
    three_versions: Path, watcher: Watcher, client: FlaskClient
) -> None:
    settings_file = three_versions / "model-settings.toml"
    settings_file.write_text(SETTINGS.replace("[versions]\n", '[versions]\npin = "1"\n'))
    watcher.look()
    watcher.look()
    assert _answering_version(client) == "1"

    result = CliRunner().invoke(main, ["unpin", str(three_versions)])

    assert result.exit_code == 0, result.output
    assert settings_file.read_text() == SETTINGS
    watcher.look()
    assert _answering_version(client) == "3"
    served = client.get("/v2/models/linear/versions/2/ready")
    assert served.status_code == 200  # latest = 2 serves again


def test_pin_writes_a_settings_file_where_there_was_none(
    three_versions: Path, watcher: Watcher, client: FlaskClient
) -> None:
    result = CliRunner().invoke(main, ["pin", str(three_versions), "2"])

    assert result.exit_code == 0, result.output
    assert (three_versions / "model-settings.toml").read_text() == '[versions]\npin = "2"\n'
    watcher.look()
    watcher.look()  # a new file is taken once it stayed the same for a look
    assert _answering_version(client) == "2"

    assert CliRunner().invoke(main, ["unpin", str(three_versions)]).exit_code == 0
    assert (three_versions / "model-settings.toml").read_text() == ""


@pytest.mark.parametrize(
    "version",
    [pytest.param("9", id="a version the folder lacks"), pytest.param("latest", id="not a number")],
)
def test_pinning_a_version_that_does_not_exist_fails_and_writes_nothing(
    three_versions: Path, version: str
) -> None:
    result = CliRunner().invoke(main, ["pin", str(three_versions), version])

    assert result.exit_code == 2
    assert f"model 'linear' has no version '{version}'; its versions: 1, 2, 3" in result.output
    assert not (three_versions / "model-settings.toml").exists()


def test_a_versions_table_written_inline_is_refused_rather_than_rewritten(three_versions: Path) -> None:
    settings_file = three_versions / "model-settings.toml"
    settings_file.write_text("versions = { latest = 2 }\n")

    result = CliRunner().invoke(main, ["pin", str(three_versions), "1"])

    assert result.exit_code == 2
    assert "write the pin by hand" in result.output
    assert settings_file.read_text() == "versions = { latest = 2 }\n"


def test_unpin_of_a_model_without_a_pin_changes_nothing(three_versions: Path) -> None:
    result = CliRunner().invoke(main, ["unpin", str(three_versions)])

    assert result.exit_code == 0
    assert "linear was not pinned; nothing changed" in result.output
    assert not (three_versions / "model-settings.toml").exists()
