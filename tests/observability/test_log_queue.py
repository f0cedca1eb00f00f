"""Log lines are written off the request's thread, none is lost at exit, and successes can be sampled."""

from __future__ import annotations

import io
import logging
import logging.config
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import orjson
import pytest
from flask import Flask

from flaskserve.observability.log_queue import LogQueue
from flaskserve.observability.logging import AccessSample, configure_logging

ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
_CONFIGURED = ("flaskserve", "flaskserve.access", "gunicorn.error", "gunicorn.access", "")


class StalledStream(io.StringIO):
    """A stream whose writes wait until it is let go, like a stdout nobody reads."""

    def __init__(self) -> None:
        super().__init__()
        self.released = threading.Event()

    def write(self, text: str) -> int:
        if not self.released.wait(timeout=30):
            raise TimeoutError("the stream was never let go")
        return super().write(text)


@pytest.fixture
def restore_loggers() -> Iterator[list[logging.Handler]]:
    saved = {
        name: (list(logger.handlers), list(logger.filters), logger.level, logger.propagate)
        for name in _CONFIGURED
        for logger in [logging.getLogger(name)]
    }
    configured: list[logging.Handler] = []
    yield configured
    for handler in configured:
        handler.close()
    for name, (handlers, filters, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.filters[:] = filters
        logger.setLevel(level)
        logger.propagate = propagate


def access_lines(stream: io.StringIO) -> list[dict[str, object]]:
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["logger"] == "flaskserve.access"]


def test_a_stalled_log_stream_does_not_hold_up_the_answer(
    app: Flask, restore_loggers: list[logging.Handler]
) -> None:
    stream = StalledStream()
    handler = configure_logging("info", "json", stream)
    restore_loggers.append(handler)

    response = app.test_client().post("/models/iris/versions/1/predict", json=ROW)

    # The answer came back while the stream could not take a single byte.
    assert response.status_code == 200
    assert stream.getvalue() == ""
    stream.released.set()
    handler.flush()
    (line,) = access_lines(stream)
    assert line["request_id"] == response.headers["X-Request-ID"]
    assert line["status"] == 200


def test_lines_come_out_in_the_order_they_were_logged() -> None:
    stream = io.StringIO()
    target = logging.StreamHandler(stream)
    target.setFormatter(logging.Formatter("%(message)s"))
    log_queue = LogQueue(target, limit=8)  # far fewer than the lines: logging waits for room
    logger = logging.Logger("ordered")
    logger.addHandler(log_queue.handler)
    for number in range(100):
        logger.info("line %d", number)
    log_queue.close()
    assert stream.getvalue().splitlines() == [f"line {number}" for number in range(100)]


EXIT_SCRIPT = """
import os, sys, time, logging, multiprocessing
from flaskserve.observability.logging import configure_logging

class Slow:
    def write(self, text):
        time.sleep(0.0005)
        return sys.stdout.write(text)
    def flush(self):
        sys.stdout.flush()
    def isatty(self):
        return False

configure_logging("info", "json", Slow())
log = logging.getLogger("flaskserve.test")

def worker(name):
    for number in range(100):
        log.info("line", extra={"writer": name, "number": number})

child = multiprocessing.get_context("fork").Process(target=worker, args=("child",))
child.start()
child.join()
worker("parent")
if sys.argv[1] == "os._exit":
    from flaskserve.serving.signals import drain_all
    drain_all()
    os._exit(0)
"""


@pytest.mark.parametrize(
    "ending",
    [
        pytest.param("return", id="a normal exit"),
        pytest.param("os._exit", id="os._exit after drain_all, as a quitting worker does"),
    ],
)
def test_no_line_is_lost_when_the_process_ends(ending: str) -> None:
    finished = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(EXIT_SCRIPT), ending],
        capture_output=True,
        timeout=60,
        check=True,
    )
    lines = [orjson.loads(line) for line in finished.stdout.splitlines()]
    for writer in ("child", "parent"):
        assert [line["number"] for line in lines if line.get("writer") == writer] == list(range(100))


def test_sampling_keeps_every_refusal_and_no_success_at_zero(
    app: Flask, restore_loggers: list[logging.Handler]
) -> None:
    stream = io.StringIO()
    handler = configure_logging("info", "json", stream, access_sample=0.0)
    restore_loggers.append(handler)
    client = app.test_client()

    assert client.post("/models/iris/versions/1/predict", json=ROW).status_code == 200
    refused = client.post("/models/iris/versions/1/predict", json={"sepal_length": 5.1})
    assert refused.status_code == 400
    handler.flush()

    assert [line["status"] for line in access_lines(stream)] == [400]


def test_sampling_keeps_the_share_asked_for_of_successes() -> None:
    draws = iter([0.05, 0.5, 0.95, 0.2, 0.09])
    sample = AccessSample(0.1, draw=lambda: next(draws))

    def record(status: int) -> logging.LogRecord:
        made = logging.makeLogRecord({"msg": "request", "status": status})
        return made

    kept = [sample.filter(record(200)) for _ in range(5)]
    assert kept == [True, False, False, False, True]
    assert [sample.filter(record(status)) for status in (302, 404, 503)] == [True, True, True]


def test_configuring_again_finishes_the_previous_writer(restore_loggers: list[logging.Handler]) -> None:
    first_stream = io.StringIO()
    first = configure_logging("info", "json", first_stream)
    logging.getLogger("flaskserve.test").info("to the first stream")
    second = configure_logging("info", "json", io.StringIO())
    restore_loggers.append(second)

    assert [orjson.loads(line)["message"] for line in first_stream.getvalue().splitlines()] == [
        "to the first stream"
    ]
    assert first is not second


def test_lines_stay_off_the_request_thread_after_logging_is_configured_again(
    app: Flask, restore_loggers: list[logging.Handler]
) -> None:
    # gunicorn's and granian's logging setups call dictConfig, which closes every handler there is.
    stream = StalledStream()
    handler = configure_logging("info", "json", stream)
    restore_loggers.append(handler)
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})

    response = app.test_client().post("/models/iris/versions/1/predict", json=ROW)

    assert response.status_code == 200
    assert stream.getvalue() == ""
    stream.released.set()
    handler.flush()
    (line,) = access_lines(stream)
    assert line["request_id"] == response.headers["X-Request-ID"]


def test_a_flush_writes_what_gathered_without_waiting_out_the_gathering() -> None:
    stream = io.StringIO()
    log_queue = LogQueue(logging.StreamHandler(stream), gather_s=3600)
    logger = logging.Logger("gathered")
    logger.addHandler(log_queue.handler)
    try:
        for _ in range(3):  # the first line starts the writer; each flush finds one line gathering
            logger.info("line")
            flushing = threading.Thread(target=log_queue.handler.flush)
            flushing.start()
            flushing.join(timeout=30)
            assert not flushing.is_alive(), "the flush waited for the gathering to end"
    finally:
        log_queue.close()
    assert stream.getvalue().splitlines() == ["line"] * 3
