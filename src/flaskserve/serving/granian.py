"""Run the app under granian (optional: ``pip install 'flaskserve[granian]'``), models loaded before the fork.

granian parses HTTP in Rust and hands each request to one of a worker's
blocking Python threads, so the per-request cost outside the app is far lower
than gunicorn's; see docs/performance.md for the measurements. Workers and
threads follow the same settings and defaults as under gunicorn.

granian forks its workers from this process (Linux), and each worker is given a
loader that returns the app built here, so models are loaded once and shared
copy-on-write, as under gunicorn. gunicorn stays the default because granian
cannot bound slow request bodies (below) and gunicorn's hooks mark the metrics
files of dead workers.

Slow clients: granian reads request heads in Rust, so they hold no Python thread,
but each connection holds one of its worker's ``backpressure`` permits from the
moment it is accepted until it closes, idle or not. With as many permits as
threads (4 a worker), 8 clients sending their headers slowly stopped a
two-worker server from accepting anyone else. Permits are therefore as many as
``worker_connections``, and ``header_timeout_s`` bounds how long a request head,
or the wait for the next request on a kept-alive connection, may take.

Slow bodies: granian calls the app once the head is in, and the app reads the
body in its blocking thread, so a client that sends its body a few bytes a second
holds a thread for as long as it goes on. granian offers no bound on that time
(``HTTP1Settings`` has a header timeout, keep-alive, a buffer size and pipeline
flushing; nothing for bodies), every read of ``wsgi.input`` waits in granian's
runtime for its size, a newline or the end with no deadline, and more
``blocking_threads`` only raise the number of such clients it takes: in front of
untrusted clients granian needs a proxy that buffers request bodies
(docs/reliability.md, "Abusive clients"). The body and
send timeouts of the settings apply under gunicorn only. Answers are written by
granian, not by the app's threads, so clients that do not read hold no thread.

Signals mean what :mod:`flaskserve.serving.signals` says; granian alone ignored
``QUIT`` (its master died of it and the workers served on).
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable
from typing import Any

from flask import Flask

from flaskserve.errors import ConfigError
from flaskserve.lifecycle.draining import RETIRE_S, close_connections_when_due, retire_connections
from flaskserve.lifecycle.rebalancing import announce_arrival
from flaskserve.runtime import get_runtime
from flaskserve.security.tls import ServerTLS
from flaskserve.serving.gunicorn import default_threads, default_workers
from flaskserve.serving.signals import GRACEFUL_TIMEOUT_S, take_over_worker_signals
from flaskserve.settings import Settings

log = logging.getLogger("flaskserve.serving")

INSTALL_HINT = "pip install 'flaskserve[granian]'"


def build_server(settings: Settings, tls: ServerTLS | None = None) -> Any:
    """A configured granian server (not yet started); refuses what it cannot serve.

    With ``tls``, granian speaks HTTPS itself: TLS 1.2 or newer, and client
    certificates required when a CA bundle for them is given (mutual TLS).
    """
    try:
        from granian.constants import Interfaces, SSLProtocols
        from granian.http import HTTP1Settings

        from flaskserve.serving.granian_master import GranianMaster
    except ImportError:
        raise ConfigError(f"--server granian needs granian: {INSTALL_HINT}") from None
    if multiprocessing.get_start_method() != "fork":
        raise ConfigError("--server granian needs the 'fork' start method to share loaded models")
    workers = settings.workers or default_workers()
    threads = settings.threads or default_threads(settings)
    log.info("starting granian", extra={"bind": f"{settings.host}:{settings.port}", "workers": workers})
    return GranianMaster(
        # granian wants an import string; the loader below ignores it and returns the built app.
        "flaskserve.app:create_app",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=threads,
        # Permits are held per connection, not per request: as many as the connections a worker
        # may hold. Requests beyond the threads wait for one in Rust, not in Python.
        backpressure=settings.worker_connections,
        http1_settings=HTTP1Settings(
            header_read_timeout=round(settings.header_timeout_s * 1000), keep_alive=True
        ),
        # A graceful stop (TERM) waits this long for requests in progress, then kills the worker.
        workers_kill_timeout=GRACEFUL_TIMEOUT_S,
        websockets=False,
        log_access=False,
        log_dictconfig=_log_config(settings),
        # A worker that dies is replaced, as gunicorn does.
        respawn_failed_workers=True,
        ssl_cert=tls.certfile if tls is not None else None,
        ssl_key=tls.keyfile if tls is not None else None,
        ssl_ca=tls.ca_certs if tls is not None else None,
        ssl_client_verify=tls is not None and tls.ca_certs is not None,
        ssl_protocol_min=SSLProtocols.tls12,
    )


def _log_config(settings: Settings) -> dict[str, Any]:
    """granian's own lines (start, workers, shutdown) in flaskserve's format, like gunicorn's."""
    handler = {"formatter": "flaskserve", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    return {
        "formatters": {
            "flaskserve": {
                "()": "flaskserve.observability.logging.make_formatter",
                "log_format": settings.log_format,
            }
        },
        "handlers": {"flaskserve": handler},
        "loggers": {
            "_granian": {"handlers": ["flaskserve"], "level": "INFO", "propagate": False},
            "granian.access": {"handlers": ["flaskserve"], "level": "INFO", "propagate": False},
        },
    }


def serve(
    server: Any,
    app: Flask,
    *,
    in_worker: Callable[[], object] | None = None,
    on_reload: Callable[[], object] | None = None,
) -> None:
    """Run until stopped; every worker serves ``app`` as built (and its models as loaded) here.

    ``in_worker`` is called in each worker process once it runs (after the fork); ``on_reload``
    in this process on ``HUP``, before granian respawns the workers.
    """
    if on_reload is not None:
        server.on_reload(on_reload)

    def load(_target: str) -> Any:
        # Called in each worker process, before granian sets up its own signal handlers.
        take_over_worker_signals(GRACEFUL_TIMEOUT_S, before_stop=_retire_connections)
        if in_worker is not None:
            in_worker()
        get_runtime(app).watcher.start()
        wsgi_app = close_connections_when_due(app)
        server.report_ready()
        settings = get_runtime(app).settings
        announce_arrival(settings.port, settings.workers or default_workers())
        return wsgi_app

    server.drain_delay_s = get_runtime(app).settings.drain_delay_s
    server.drain = get_runtime(app).drain
    server.serve(target_loader=load)


def _retire_connections() -> None:
    """Before granian's graceful stop: answers close their connections for a moment (lifecycle.draining)."""
    retire_connections()
    time.sleep(RETIRE_S)
