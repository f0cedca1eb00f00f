"""One structured line per request, the request id on every line, tracebacks only in the log."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from flask import Flask
from gunicorn.config import Config

from flaskserve.app import create_app
from flaskserve.observability.gunicorn import GunicornLogger
from flaskserve.observability.logging import configure_logging
from flaskserve.settings import Settings

ROW = {"x": 1.0, "y": 2.0}
_CONFIGURED = ("flaskserve", "gunicorn.error", "gunicorn.access", "")


@pytest.fixture
def configure() -> Iterator[Callable[..., io.StringIO]]:
    """Point flaskserve's logging at a string buffer; put the loggers back afterwards."""
    saved = {
        name: (list(logger.handlers), logger.level, logger.propagate)
        for name in _CONFIGURED
        for logger in [logging.getLogger(name)]
    }

    handlers: list[logging.Handler] = []

    def apply(level: str = "info", log_format: str = "json", access_sample: float = 1.0) -> io.StringIO:
        stream = WrittenLines()
        stream.handler = configure_logging(level, log_format, stream, access_sample=access_sample)
        handlers.append(stream.handler)
        return stream

    yield apply
    for handler in handlers:
        handler.close()
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


class WrittenLines(io.StringIO):
    """A log stream whose value is read once every line logged so far has been written to it."""

    handler: logging.Handler

    def getvalue(self) -> str:
        self.handler.flush()
        return super().getvalue()


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_each_request_writes_one_json_line_with_its_request_id(
    configure: Callable[..., io.StringIO], app: Flask
) -> None:
    stream = configure()
    response = app.test_client().post(
        "/models/iris/versions/1/predict",
        json={"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
    )
    assert response.status_code == 200

    (line,) = [r for r in records(stream) if r["logger"] == "flaskserve.access"]
    assert line["request_id"] == response.headers["X-Request-ID"]
    assert {key: line[key] for key in ("model", "version", "method", "protocol", "status", "rows")} == {
        "model": "iris",
        "version": "1",
        "method": "predict",
        "protocol": "simple",
        "status": 200,
        "rows": 1,
    }
    assert line["http_method"] == "POST"
    assert line["route"] == "/models/<name>/versions/<version>/predict"
    assert line["client"] == "127.0.0.1"
    assert "cache_hit" not in line  # this model has no cache: there is no hit or miss to tell
    assert line["batch_rows"] >= 1
    assert line["latency_ms"] > 0
    assert line["time"].endswith("Z")


def test_the_access_line_tells_cache_hits_from_misses(
    configure: Callable[..., io.StringIO], make_settings: Callable[..., Settings]
) -> None:
    stream = configure()
    client = create_app(make_settings(cache_size=10)).test_client()

    for _ in range(2):
        client.post("/predict", json={"x": 1, "y": 2})

    lines = [r for r in records(stream) if r["logger"] == "flaskserve.access"]
    assert [line["cache_hit"] for line in lines] == [False, True]


def test_an_unexpected_error_logs_its_traceback_and_id_but_answers_only_the_id(
    configure: Callable[..., io.StringIO], make_settings: Callable[..., Settings]
) -> None:
    app = create_app(make_settings())

    @app.get("/explode")
    def explode() -> str:
        raise RuntimeError("secret internals")

    stream = configure()
    response = app.test_client().get("/explode", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert b"secret internals" not in response.data
    assert b"Traceback" not in response.data
    error_id = response.headers["X-Error-Id"]
    assert error_id in response.get_json()["error"]

    lines = [r for r in records(stream) if r.get("request_id") == "req-500"]
    assert sorted(r["logger"] for r in lines) == ["flaskserve.access", "flaskserve.api"]
    for line in lines:
        assert line["error_id"] == error_id
    (error,) = [r for r in lines if r["logger"] == "flaskserve.api"]
    assert "RuntimeError: secret internals" in error["traceback"]


def test_the_level_setting_filters_request_lines(configure: Callable[..., io.StringIO], app: Flask) -> None:
    stream = configure(level="warning")
    app.test_client().post("/predict", json=ROW)
    assert stream.getvalue() == ""


def test_text_format_is_one_readable_line(configure: Callable[..., io.StringIO], app: Flask) -> None:
    stream = configure(log_format="text")
    response = app.test_client().post("/predict", json=ROW)
    (line,) = stream.getvalue().splitlines()
    assert " INFO    request " in line
    assert f"request_id={response.headers['X-Request-ID']}" in line
    assert "status=200" in line


def test_auto_format_writes_json_when_not_to_a_terminal(
    configure: Callable[..., io.StringIO], app: Flask
) -> None:
    stream = configure(log_format="auto")
    app.test_client().post("/predict", json=ROW)
    assert records(stream)[0]["message"] == "request"


def test_gunicorn_logs_in_flaskserve_format(configure: Callable[..., io.StringIO]) -> None:
    stream = configure()
    logger = GunicornLogger(Config())
    logger.info("Booting worker with pid: %s", 42)
    (line,) = records(stream)
    # gunicorn logs its informational lines through "gunicorn.error"; they are not errors.
    assert (line["logger"], line["level"]) == ("gunicorn", "info")
    assert line["message"] == "Booting worker with pid: 42"


def test_libraries_warnings_share_the_format_but_not_their_debug_lines(
    configure: Callable[..., io.StringIO],
) -> None:
    stream = configure(level="debug")
    library = logging.getLogger("some.library")
    library.debug("chatter")
    library.warning("storage unreachable")
    (line,) = records(stream)
    assert (line["logger"], line["level"], line["message"]) == (
        "some.library",
        "warning",
        "storage unreachable",
    )
