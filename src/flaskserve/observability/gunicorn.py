"""gunicorn's side of observability: its logs in flaskserve's format, and dead workers' metrics.

gunicorn installs its own handlers on ``gunicorn.error`` and ``gunicorn.access``
when its logger is set up (in the master, after the app is built, and again on
reload), replacing whatever ``configure_logging`` put there. A logger class that
puts flaskserve's handlers back after gunicorn's setup keeps one format for every
line the server writes. gunicorn writes all its own lines, "Listening at" included,
through ``gunicorn.error``; they are shown as the logger ``gunicorn``, so that an
informational line does not read as an error.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger

from flaskserve.observability.logging import install_root_handler
from flaskserve.observability.multiprocess import mark_worker_dead

__all__ = ["GunicornLogger", "child_exit", "observability_options"]


class _GunicornName(logging.Filter):
    """Show the records of ``gunicorn.error`` as those of ``gunicorn``: most of them are no error."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.name = "gunicorn"
        return True


_GUNICORN_NAME = _GunicornName()


class GunicornLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, writing through the handlers that ``configure_logging`` set up."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        own = logging.getLogger("flaskserve")
        handlers = list(own.handlers)
        if not handlers:
            # flaskserve's logging was not configured (an embedding program): keep gunicorn's own.
            return
        for log in (self.error_log, self.access_log):
            log.handlers[:] = handlers
            log.propagate = False
        self.error_log.addFilter(_GUNICORN_NAME)
        # gunicorn's ``logconfig_dict`` resets the root logger; libraries log through it.
        install_root_handler(handlers, own.level)

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        """Do nothing: flaskserve writes its own, richer line per request."""


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook, run in the master when a worker exits for any reason."""
    mark_worker_dead(worker.pid)


def observability_options() -> dict[str, Any]:
    """The gunicorn settings that wire this module in."""
    return {"logger_class": GunicornLogger, "child_exit": child_exit, "accesslog": None}
