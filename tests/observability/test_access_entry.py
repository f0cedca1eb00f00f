"""The access line queued as its bare facts is the line the standard logging path writes, byte for byte."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from flaskserve.observability.logging import (
    ACCESS_LOGGER,
    AccessEntry,
    JsonFormatter,
    configure_logging,
    queue_access_line,
)

_CONFIGURED = ("flaskserve", ACCESS_LOGGER, "gunicorn.error", "gunicorn.access", "")
#: 2026-12-01T13:27:58.250Z, with milliseconds no float rounding can move.
FIXED_TIME = 1796131678.25
FIELDS: dict[str, Any] = {
    "request_id": "b1946ac92492d2347c6235b4d2611184",
    "client": "127.0.0.1",
    "http_method": "POST",
    "path": "/predict",
    "route": "/predict",
    "protocol": "flaskserve",
    "model": "linear",
    "version": "1",
    "method": "predict",
    "status": 200,
    "rows": 1,
    "latency_ms": 0.412,
    "cache_hit": False,
}


@pytest.fixture
def configure() -> Iterator[Callable[..., io.StringIO]]:
    """Point flaskserve's logging at a string buffer; put the loggers back afterwards."""
    saved = {
        name: (list(logger.handlers), list(logger.filters), logger.level, logger.propagate)
        for name in _CONFIGURED
        for logger in [logging.getLogger(name)]
    }
    handlers: list[logging.Handler] = []

    def apply(log_format: str = "json", access_sample: float = 1.0) -> io.StringIO:
        stream = io.StringIO()
        handlers.append(configure_logging("info", log_format, stream, access_sample=access_sample))
        return stream

    yield apply
    for handler in handlers:
        handler.close()
    for name, (kept, filters, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = kept
        logger.filters[:] = filters
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.fixture
def fixed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: FIXED_TIME)
    monkeypatch.setattr(time, "time_ns", lambda: int(FIXED_TIME * 1_000_000_000))


def written(stream: io.StringIO) -> str:
    for handler in logging.getLogger("flaskserve").handlers:
        handler.flush()
    return stream.getvalue()


def standard_line(fields: dict[str, Any], level: int) -> None:
    """The access line as ``Logger.makeRecord`` and ``Logger.handle`` log it."""
    access = logging.getLogger(ACCESS_LOGGER)
    access.handle(access.makeRecord(access.name, level, __file__, 0, "request", (), None, extra=fields))


@pytest.mark.usefixtures("fixed_time")
@pytest.mark.parametrize("log_format", ["json", "text"])
@pytest.mark.parametrize(("status", "level"), [(200, logging.INFO), (503, logging.ERROR)])
def test_the_queued_access_line_is_the_standard_line_byte_for_byte(
    configure: Callable[..., io.StringIO], log_format: str, status: int, level: int
) -> None:
    fields = {**FIELDS, "status": status}
    standard = configure(log_format)
    standard_line(fields, level)
    queued = configure(log_format)

    assert queue_access_line(logging.getLogger(ACCESS_LOGGER), level, fields, __file__)

    assert written(queued) == written(standard)
    assert written(queued).count("\n") == 1


def test_the_queued_record_is_the_one_make_record_makes(fixed_time: None) -> None:
    access = logging.getLogger(ACCESS_LOGGER)
    standard = access.makeRecord(access.name, logging.ERROR, __file__, 0, "request", (), None, extra=FIELDS)

    queued = AccessEntry(
        ACCESS_LOGGER, logging.ERROR, __file__, FIELDS, FIXED_TIME, threading.get_ident()
    ).record()

    assert {**vars(queued), "threadName": standard.threadName} == vars(standard)


def test_an_access_logger_with_a_handler_of_its_own_gets_the_standard_record(
    configure: Callable[..., io.StringIO],
) -> None:
    configure()
    access = logging.getLogger(ACCESS_LOGGER)
    seen: list[logging.LogRecord] = []
    own = logging.Handler()
    own.emit = seen.append  # type: ignore[method-assign]
    access.addHandler(own)

    assert not queue_access_line(access, logging.INFO, FIELDS, __file__)


@pytest.mark.parametrize(
    "reconfigure",
    [
        lambda: logging.getLogger(ACCESS_LOGGER).addFilter(lambda record: True),
        lambda: logging.getLogger("flaskserve").handlers[0].setLevel(logging.ERROR),
        lambda: logging.getLogger("flaskserve").handlers[0].addFilter(lambda record: True),
        lambda: logging.getLogger("flaskserve").addHandler(logging.NullHandler()),
        lambda: setattr(logging.getLogger("flaskserve"), "propagate", True),
        lambda: setattr(logging.getLogger(ACCESS_LOGGER), "propagate", False),
    ],
    ids=[
        "logger-filter",
        "handler-level",
        "handler-filter",
        "second-handler",
        "parent-propagates",
        "no-propagation",
    ],
)
def test_any_logging_set_up_but_flaskserves_own_takes_the_standard_path(
    configure: Callable[..., io.StringIO], reconfigure: Callable[[], None]
) -> None:
    configure()
    reconfigure()

    assert not queue_access_line(logging.getLogger(ACCESS_LOGGER), logging.INFO, FIELDS, __file__)


def test_sampling_leaves_out_successes_and_keeps_errors(configure: Callable[..., io.StringIO]) -> None:
    stream = configure(access_sample=0.0)
    access = logging.getLogger(ACCESS_LOGGER)

    assert queue_access_line(access, logging.INFO, FIELDS, __file__)
    assert queue_access_line(access, logging.ERROR, {**FIELDS, "status": 500}, __file__)

    (line,) = written(stream).splitlines()
    assert '"status":500' in line
    assert '"level":"error"' in line


def test_a_json_line_is_stamped_with_its_own_second_and_millisecond() -> None:
    formatter = JsonFormatter()
    lines = [
        orjson.loads(formatter.line(created, (created % 1) * 1000, "INFO", "x", 1, "m", {}))
        for created in (FIXED_TIME, FIXED_TIME + 0.5, FIXED_TIME + 1, FIXED_TIME - 3600)
    ]

    assert [line["time"] for line in lines] == [
        "2026-12-01T13:27:58.250Z",
        "2026-12-01T13:27:58.750Z",
        "2026-12-01T13:27:59.250Z",
        "2026-12-01T12:27:58.250Z",
    ]
