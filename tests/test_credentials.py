"""Credentials in settings are used whole and shown redacted: in `check`, the startup log and `/`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from flaskserve.app import create_app
from flaskserve.cli import main
from flaskserve.credentials import redact_url
from flaskserve.settings import Settings

PASSWORD = "s3cret-Pa55"
REDIS_URL = f"redis://:{PASSWORD}@127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param(REDIS_URL, "redis://:***@127.0.0.1:6379/0", id="password only"),
        pytest.param("redis://app:pw@cache:6380/1", "redis://app:***@cache:6380/1", id="user and password"),
        pytest.param("redis://app@cache/1", "redis://app@cache/1", id="user without password"),
        pytest.param("memory://", "memory://", id="no credentials"),
        pytest.param(
            "rediss://cache:6379/0?ssl_cert_reqs=none&password=pw",
            "rediss://cache:6379/0?ssl_cert_reqs=none&password=***",
            id="password in the query",
        ),
        pytest.param("redis://:pw@cache:notaport/0", "***", id="unparseable: nothing shown"),
    ],
)
def test_redacted_urls_keep_everything_but_the_secret(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_setting_keeps_the_whole_url_and_describes_it_redacted(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(rate_limit_storage=REDIS_URL)

    assert settings.rate_limit_storage == REDIS_URL
    assert settings.describe()["rate_limit_storage"] == "redis://:***@127.0.0.1:6379/0"


def test_check_never_prints_the_password(repository: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASKSERVE_RATE_LIMIT_STORAGE", REDIS_URL)

    result = CliRunner().invoke(main, ["check", "--allow-pickle", str(repository / "linear")])

    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert orjson.loads(result.output)["settings"]["rate_limit_storage"] == "redis://:***@127.0.0.1:6379/0"


def test_neither_the_startup_log_nor_the_index_shows_the_password(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(rate_limit="100/minute", rate_limit_storage=REDIS_URL)

    with caplog.at_level(logging.DEBUG):
        app = create_app(settings)
        index = app.test_client().get("/")

    logged = [record.__dict__ for record in caplog.records]
    assert logged, "the app logged nothing at start-up"
    assert all(PASSWORD not in repr(record) for record in logged)
    assert PASSWORD not in index.get_data(as_text=True)


def test_an_unusable_storage_url_is_reported_without_its_password(make_settings: Callable[..., Any]) -> None:
    from flaskserve.errors import ConfigError

    settings = make_settings(rate_limit="100/minute", rate_limit_storage=f"nosuch://:{PASSWORD}@host:1/0")

    with pytest.raises(ConfigError) as raised:
        create_app(settings)

    assert PASSWORD not in raised.value.message
