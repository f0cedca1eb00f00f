"""Run the app under granian (optional: ``pip install 'flaskserve[granian]'``), models loaded before the fork.

granian parses HTTP in Rust and hands each request to one of a worker's
blocking Python threads, so the per-request cost outside the app is far lower
than gunicorn's; see docs/performance.md for the measurements. Workers and
threads follow the same settings and defaults as under gunicorn.

granian forks its workers from this process (Linux), and each worker is given a
loader that returns the app built here, so models are loaded once and shared
copy-on-write, as under gunicorn. gunicorn stays the default because its hooks
mark the metrics files of dead workers.
"""

from __future__ import annotations

import logging
import multiprocessing
from typing import Any

from flask import Flask

from flaskserve.errors import ConfigError
from flaskserve.security.tls import ServerTLS
from flaskserve.serving.gunicorn import default_threads, default_workers
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
        from granian.server import Server
    except ImportError:
        raise ConfigError(f"--server granian needs granian: {INSTALL_HINT}") from None
    if multiprocessing.get_start_method() != "fork":
        raise ConfigError("--server granian needs the 'fork' start method to share loaded models")
    workers = settings.workers or default_workers()
    threads = settings.threads or default_threads(settings)
    log.info("starting granian", extra={"bind": f"{settings.host}:{settings.port}", "workers": workers})
    return Server(
        # granian wants an import string; the loader below ignores it and returns the built app.
        "flaskserve.app:create_app",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=threads,
        # As many requests in Python at once as there are threads to run them; the rest wait in Rust.
        backpressure=threads,
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


def serve(server: Any, app: Flask) -> None:
    """Run until stopped; every worker serves ``app`` as built (and its models as loaded) here."""

    def load(_target: str) -> Flask:
        return app

    server.serve(target_loader=load)
