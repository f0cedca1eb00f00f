"""One precedence order: defaults < TOML file < FLASKSERVE_* environment < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from flaskserve.errors import ConfigError
from flaskserve.settings import load_settings


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "flaskserve.toml"
    path.write_text('port = 6000\nhost = "0.0.0.0"\nworkers = 3\n[limits]\nmax_rows = 10\n')
    return path


def test_defaults_apply_when_nothing_is_said() -> None:
    settings = load_settings(None)

    assert (settings.host, settings.port, settings.allow_pickle) == ("127.0.0.1", 5000, False)


def test_file_then_environment_then_flags(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASKSERVE_PORT", "7000")
    monkeypatch.setenv("FLASKSERVE_LIMITS__MAX_JSON_DEPTH", "8")

    settings = load_settings(config_file, workers=5, host=None)

    assert settings.host == "0.0.0.0"  # file
    assert settings.port == 7000  # environment beats file
    assert settings.workers == 5  # flag beats file
    assert (settings.limits.max_rows, settings.limits.max_json_depth) == (10, 8)  # nested values merge


@pytest.mark.parametrize(
    ("content", "says"),
    [
        pytest.param("port = [", "not valid TOML", id="broken TOML"),
        pytest.param('port = "high"', "port", id="wrong type"),
        pytest.param("colour = 1", "colour", id="unknown key"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)

    with pytest.raises(ConfigError, match=says):
        load_settings(path)
