"""Run the app under gunicorn with threaded workers, models loaded before the fork.

The app (and so every model) is built in the master process; gunicorn then
forks its workers, which share the models' memory pages copy-on-write instead
of each loading its own copy. The workers are gunicorn's ``gthread`` workers
reading request heads in their event loop, so that slow clients hold no thread
(:mod:`flaskserve.serving.gthread`); the signals mean what
:mod:`flaskserve.serving.signals` says.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from flaskserve.lifecycle.draining import DrainMarker
from flaskserve.lifecycle.rebalancing import announce_arrival
from flaskserve.observability.gunicorn import observability_options
from flaskserve.runtime import get_runtime
from flaskserve.serving.gthread import ClientLimits, head_reading_worker
from flaskserve.serving.signals import GRACEFUL_TIMEOUT_S
from flaskserve.settings import Settings, cpu_count

log = logging.getLogger("flaskserve.serving")

#: Threads per worker when settings name none. See docs/performance.md ("Threads, keep-alive and
#: backpressure") for the measurement.
DEFAULT_THREADS = 16


def default_workers() -> int:
    return max(1, cpu_count())


def default_threads(settings: Settings) -> int:
    """Threads per worker when settings name none.

    A worker can only merge the requests its own threads hold, so with batching
    on it gets as many threads as a batch has rows (up to 64); otherwise 16: a
    model that waits (on I/O, a lock, a sleep) serves as many requests at once
    as there are threads, and for a one-row model that does not wait 16 threads
    cost no more CPU a request than 2 or 4 did within the noise, where 32 began
    to (docs/performance.md).
    """
    if settings.max_batch_size > 1:
        return max(DEFAULT_THREADS, min(settings.max_batch_size, 64))
    return DEFAULT_THREADS


class DrainingArbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's master, draining the replica for ``drain_delay_s`` on ``TERM`` (lifecycle/draining.py).

    The first ``TERM`` marks the replica draining (readiness 503) and is handled
    as gunicorn's graceful stop only ``drain_delay_s`` later, the workers serving
    meanwhile; a second ``TERM`` stops at once, gracefully; ``INT`` and ``QUIT`` stay quick.
    """

    drain = DrainMarker()
    drain_delay_s = 0.0
    _draining = False

    def handle_term(self) -> None:
        if self._draining or self.drain_delay_s <= 0:
            super().handle_term()
            return
        self._draining = True
        self.drain.begin()
        log.info(
            "draining: readiness answers 503; stopping after the drain delay",
            extra={"drain_delay_s": self.drain_delay_s},
        )
        # The arbiter handles signals from its queue in its own loop: the delayed TERM joins it.
        timer = threading.Timer(self.drain_delay_s, self.signal, args=(signal.SIGTERM, None))
        timer.daemon = True
        timer.start()


def exit_without_teardown(_arbiter: Any, _worker: Any) -> None:
    """gunicorn's ``worker_exit`` hook: the worker ends here, its exit status kept, without the teardown.

    A worker forked from the master that loaded the app shares the master's
    memory until it writes to it, and the teardown of an interpreter at exit
    (every module and object released) writes to nearly all of it: page after
    page copied for nothing, seconds of CPU on a busy machine, during which the
    worker that logged "Worker exiting" lingers and a graceful stop waits for it.
    What must run at exit runs first: the ``atexit`` handlers (the log writers
    drained, the gRPC server's calls in progress awaited). gunicorn calls the
    hook while the worker's ``SystemExit`` is raised; its code is kept, so a
    worker that failed to boot still stops the server.
    """
    leaving = sys.exc_info()[1]
    code = leaving.code if isinstance(leaving, SystemExit) else 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """gunicorn, configured from flaskserve's settings rather than its own command line."""

    def __init__(
        self,
        app: Flask,
        options: dict[str, Any],
        drain: DrainMarker | None = None,
        drain_delay_s: float = 0.0,
    ) -> None:
        self.application = app
        self.options = options
        self.drain = drain or DrainMarker()
        self.drain_delay_s = drain_delay_s
        super().__init__()

    def run(self) -> None:
        """gunicorn's own run, with the draining master."""
        try:
            arbiter = DrainingArbiter(self)
            arbiter.drain, arbiter.drain_delay_s = self.drain, self.drain_delay_s
            arbiter.run()
        except RuntimeError as error:  # gunicorn's own way to report a master that cannot start
            print(f"\nError: {error}\n", file=sys.stderr, flush=True)
            sys.exit(1)

    def load_config(self) -> None:
        for key, value in self.options.items():
            if value is not None:
                self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


def client_limits(settings: Settings) -> ClientLimits:
    """How long and how much the workers wait for clients (docs/reliability.md, "Slow clients")."""
    return ClientLimits(
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        body_min_rate=settings.body_min_rate,
        send_timeout_s=settings.send_timeout_s,
        max_body_bytes=settings.limits.max_body_bytes,
    )


def gunicorn_options(settings: Settings, **extra: Any) -> dict[str, Any]:
    workers = settings.workers or default_workers()
    threads = settings.threads or default_threads(settings)
    options: dict[str, Any] = {
        "bind": f"[{settings.host}]:{settings.port}"
        if ":" in settings.host
        else f"{settings.host}:{settings.port}",
        "workers": workers,
        "threads": threads,
        "worker_class": head_reading_worker(client_limits(settings)),
        "worker_connections": settings.worker_connections,
        "preload_app": True,
        "accesslog": None,
        "loglevel": settings.log_level,
        "timeout": 60,
        "graceful_timeout": GRACEFUL_TIMEOUT_S,
        "keepalive": 5,
        "proc_name": "flaskserve",
        # gunicorn 27 opens a control socket at one fixed path per user: several servers
        # on one host would share it.
        "control_socket_disable": True,
        "worker_exit": exit_without_teardown,
        # The app was built before the fork; keep gunicorn from replacing our log handlers.
        "logconfig_dict": {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}},
    }
    # Logs in flaskserve's format, no gunicorn access log, dead workers' metrics marked.
    options.update(observability_options())
    options.update(extra)
    return options


def serve(
    app: Flask,
    settings: Settings,
    *,
    in_worker: Callable[[], object] | None = None,
    on_reload: Callable[[], object] | None = None,
    **extra: Any,
) -> None:
    """Run until stopped; ``in_worker`` is called in each worker once it runs (after the fork).

    ``on_reload`` is called in the master on ``HUP``, before it forks the new workers.
    """
    options = gunicorn_options(settings, **extra)
    watcher = get_runtime(app).watcher

    def post_worker_init(_worker: Any) -> None:
        # In each worker, after the fork: threads and servers must not be started in the master.
        watcher.start()
        if in_worker is not None:
            in_worker()
        announce_arrival(settings.port, options["workers"])

    options["post_worker_init"] = post_worker_init
    if on_reload is not None:
        options["on_reload"] = lambda _arbiter: on_reload()
    log.info(
        "starting gunicorn",
        extra={"bind": options["bind"], "workers": options["workers"], "threads": options["threads"]},
    )
    GunicornServer(app, options, get_runtime(app).drain, settings.drain_delay_s).run()
