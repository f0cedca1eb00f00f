"""Reading the configuration file again (``HUP``): what a running app takes, and what it keeps for a restart.

:func:`~flaskserve.app.reconfigure` is what the server's master calls on ``HUP``;
here it is called on an app in this process, with the settings read from a real file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from flask import Flask

from flaskserve.app import create_app, reconfigure
from flaskserve.runtime import get_runtime
from flaskserve.settings import SettingsSource


@pytest.fixture
def config(tmp_path: Path, models: Path) -> Path:
    path = tmp_path / "flaskserve.toml"
    path.write_text(
        f'model_path = "{models}"\nrate_limit = "100/minute"\ncors_origins = ["https://a.example"]\n'
    )
    return path


@pytest.fixture
def source(config: Path, tmp_path: Path) -> SettingsSource:
    return SettingsSource(config, {"keys_file": tmp_path / "keys.json"})


@pytest.fixture
def app(source: SettingsSource) -> Flask:
    return create_app(source.load())


def _limit(app: Flask) -> str:
    response = app.test_client().post("/models/linear/predict", json={"x": 0, "y": 0})
    return response.headers["RateLimit-Policy"]


def test_a_changed_rate_limit_applies_from_the_next_request(
    app: Flask, source: SettingsSource, config: Path
) -> None:
    assert _limit(app) == "100;w=60"
    config.write_text(config.read_text().replace("100/minute", "2/hour"))

    reconfigure(app, source.load)

    client = app.test_client()
    answers = [client.post("/models/linear/predict", json={"x": 0, "y": 0}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["RateLimit-Policy"] == "2;w=3600"
    assert get_runtime(app).settings.rate_limit == "2/hour"


def test_changed_cors_origins_apply_from_the_next_response(
    app: Flask, source: SettingsSource, config: Path
) -> None:
    config.write_text(config.read_text().replace("https://a.example", "https://b.example"))

    reconfigure(app, source.load)

    client = app.test_client()
    allowed = client.get("/v2/models/linear", headers={"Origin": "https://b.example"})
    refused = client.get("/v2/models/linear", headers={"Origin": "https://a.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://b.example"
    assert "Access-Control-Allow-Origin" not in refused.headers


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('rate_limit = "2/hour"\nport = ', id="not TOML"),
        pytest.param('rate_limit = "lots"\n', id="an invalid rate limit"),
        pytest.param('rate_limit = "2/hour"\nworkers_count = 3\n', id="an unknown setting"),
    ],
)
def test_an_invalid_file_changes_nothing_and_says_why(
    app: Flask, source: SettingsSource, config: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    config.write_text(text)

    with caplog.at_level(logging.ERROR, logger="flaskserve"):
        settings = reconfigure(app, source.load)

    assert settings.rate_limit == "100/minute"
    assert _limit(app) == "100;w=60"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "the configuration was not reloaded: the configuration in force stays"
    ]


def test_settings_that_need_a_restart_keep_their_values_and_are_named_once(
    app: Flask, source: SettingsSource, config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config.write_text(config.read_text() + 'port = 8081\nthreads = 3\nrate_limit_key_prefix = "other"\n')

    with caplog.at_level(logging.INFO, logger="flaskserve"):
        settings = reconfigure(app, source.load)

    assert (settings.port, settings.threads, settings.rate_limit_key_prefix) == (5000, None, "flaskserve")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].restart_needed == ["port", "rate_limit_key_prefix", "threads"]  # type: ignore[attr-defined]


def test_turning_rate_limits_on_needs_a_restart(
    source: SettingsSource, config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config.write_text(config.read_text().replace('rate_limit = "100/minute"\n', ""))
    app = create_app(source.load())
    config.write_text(config.read_text() + 'rate_limit = "2/hour"\n')

    with caplog.at_level(logging.WARNING, logger="flaskserve"):
        settings = reconfigure(app, source.load)

    assert settings.rate_limit is None
    assert (
        "RateLimit-Policy"
        not in app.test_client().post("/models/linear/predict", json={"x": 0, "y": 0}).headers
    )
    warnings = [r for r in caplog.records if r.name == "flaskserve.serving"]
    assert [r.restart_needed for r in warnings] == [["rate_limit"]]  # type: ignore[attr-defined]


def test_a_new_watch_interval_and_predict_timeout_are_in_force(
    app: Flask, source: SettingsSource, config: Path
) -> None:
    config.write_text(config.read_text() + "watch_interval_s = 0.5\npredict_timeout_s = 3\n")

    reconfigure(app, source.load)

    runtime = get_runtime(app)
    assert runtime.watcher.interval_s == 0.5
    assert runtime.service.predict_timeout_s == 3
    answer = app.test_client().post("/models/linear/predict", json={"x": 0, "y": 0})
    assert answer.status_code == 200
