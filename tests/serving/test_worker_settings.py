"""The gunicorn worker's settings: each read once, gunicorn's hooks kept where they do something.

gunicorn's request handling reads the worker's ``cfg`` for every request: the
worker gives it its settings read once (serving/gthread/request.py). A hook the
user configured runs as ever; gunicorn's default ``pre_request`` (a debug line)
is skipped only where that line would not be written anyway.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gunicorn.config import Config, PreRequest
from gunicorn.glogging import Logger

from flaskserve.serving.gthread import HeadReadingWorker
from flaskserve.serving.gthread import worker as worker_module
from flaskserve.serving.gthread.request import settings_of

Make = Callable[..., HeadReadingWorker]


@pytest.fixture
def make_worker() -> Iterator[Make]:
    made: list[HeadReadingWorker] = []

    def make(**settings: Any) -> HeadReadingWorker:
        cfg = Config()
        for name, value in settings.items():
            cfg.set(name, value)
        worker = HeadReadingWorker(0, os.getpid(), [], None, cfg.timeout, cfg, Logger(cfg))
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.tmp.close()


def test_a_users_pre_request_and_post_request_hooks_run(make_worker: Make) -> None:
    seen: list[str] = []

    def pre_request(worker: Any, req: Any) -> None:
        seen.append("pre")

    def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
        seen.append("post")

    worker = make_worker(pre_request=pre_request, post_request=post_request, loglevel="warning")
    worker.cfg.pre_request(worker, None)
    worker.cfg.post_request(worker, None, {}, None)
    assert seen == ["pre", "post"]


def test_the_default_pre_request_hook_is_skipped_when_its_debug_line_would_not_be_written(
    make_worker: Make,
) -> None:
    worker = make_worker(loglevel="info")
    assert worker.cfg.pre_request is not PreRequest.default
    assert worker.cfg.pre_request(worker, None) is None


def test_the_default_pre_request_hook_runs_when_the_log_is_at_debug_level(make_worker: Make) -> None:
    worker = make_worker(loglevel="debug")
    assert worker.cfg.pre_request is PreRequest.default


def test_a_logger_that_is_not_gunicorns_keeps_the_default_pre_request_hook() -> None:
    settings = settings_of(Config(), object())
    assert settings.pre_request is PreRequest.default


def test_the_worker_reads_its_settings_as_configured(make_worker: Make) -> None:
    worker = make_worker(keepalive=7, limit_request_fields=50)
    assert (worker.cfg.keepalive, worker.cfg.limit_request_fields) == (7, 50)
    assert not worker.cfg.is_ssl


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_worker_tells_the_master_it_is_alive_once_a_second_at_most(
    make_worker: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(worker_module.time, "monotonic", clock)
    worker = make_worker(timeout=30)
    told: list[float] = []
    monkeypatch.setattr(worker.tmp, "notify", lambda: told.append(clock.now))
    for _ in range(6):
        worker.notify()
        clock.now += 0.25
    assert told == [1000.0, 1001.0]


def test_a_short_timeout_is_told_twice_within_it(make_worker: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(worker_module.time, "monotonic", clock)
    worker = make_worker(timeout=1)
    told: list[float] = []
    monkeypatch.setattr(worker.tmp, "notify", lambda: told.append(clock.now))
    for _ in range(4):
        worker.notify()
        clock.now += 0.25
    assert told == [1000.0, 1000.5]
