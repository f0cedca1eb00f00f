"""Structured logs: one JSON object per line (or readable text in a terminal).

Fields passed with ``extra=`` become keys of the JSON object, so a log line
can be filtered by model, request id or error id without parsing prose.
Every line written while a request is handled carries that request's id
(:class:`RequestIdFilter`), so a bad prediction can be traced from the
client's ``X-Request-ID`` to the model's traceback.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import orjson

from flaskserve.observability.context import current_request_id
from flaskserve.observability.log_queue import LogQueue, QueuedHandler

#: The logger of the one line per request (see :mod:`flaskserve.observability.tracker`).
ACCESS_LOGGER = "flaskserve.access"

# Attributes every LogRecord has; anything else was passed with ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class RequestIdFilter(logging.Filter):
    """Stamp each record with the id of the request being handled, if any.

    It sits on the handler rather than on a logger: a logger's filters only see
    records logged through that very logger, while a handler sees every record
    that reaches it from child loggers (``flaskserve.api``, ``flaskserve.inference``...).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            request_id = current_request_id()
            if request_id is not None:
                record.request_id = request_id
        return True


class AccessSample(logging.Filter):
    """Keep a share of the successful access lines, every other one.

    At thousands of requests a second, one line per success can cost more than
    the requests; an error, a refusal or a redirect is always worth its line.
    Lines are kept at random, so no client or rhythm of traffic is always left out.
    """

    def __init__(self, share: float, draw: Callable[[], float] = random.random) -> None:
        super().__init__()
        self.share = share
        self.draw = draw

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status", None)
        if not isinstance(status, int) or not 200 <= status < 300:
            return True
        return self.draw() < self.share


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            # Which gunicorn worker wrote the line: a worker's requests can be told apart.
            "pid": record.process,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_")
        )
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.getMessage()}"
        if extras:
            line += f"  {extras}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def make_formatter(log_format: str, stream: TextIO = sys.stderr) -> logging.Formatter:
    if log_format == "auto":
        log_format = "text" if stream.isatty() else "json"
    return TextFormatter() if log_format == "text" else JsonFormatter()


#: Loggers whose records flaskserve formats at the configured level.
OWN_LOGGERS = ("flaskserve", "gunicorn.error", "gunicorn.access")


def configure_logging(
    level: str, log_format: str, stream: TextIO = sys.stderr, *, access_sample: float = 1.0
) -> logging.Handler:
    """Send flaskserve's, gunicorn's and every library's logs to one stream in one format.

    ``access_sample`` is the share of successful (2xx) access lines written; the
    others are always written.

    Libraries (redis, scikit-learn, ...) log through the root logger,
    which gets the same handler at ``warning`` or above: their warnings matter
    to an operator, their debug chatter does not.
    """
    for previous in logging.getLogger("flaskserve").handlers:
        if isinstance(previous, QueuedHandler):
            previous.owner.close()  # configured again: the old writer finishes its lines and stops
    writer = logging.StreamHandler(stream)
    writer.setFormatter(make_formatter(log_format, stream))
    # Formatting and writing happen on a thread of their own; the request id is stamped here,
    # in the thread that logs, the only one that can read it.
    handler = LogQueue(writer).handler
    handler.addFilter(RequestIdFilter())
    access = logging.getLogger(ACCESS_LOGGER)
    access.filters[:] = [f for f in access.filters if not isinstance(f, AccessSample)]
    if access_sample < 1:
        access.addFilter(AccessSample(access_sample))
    for name in OWN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    install_root_handler([handler], level)
    return handler


def install_root_handler(handlers: list[logging.Handler], level: str | int) -> None:
    """Give the root logger ``handlers``, at ``level`` but never below ``warning``."""
    numeric = level if isinstance(level, int) else logging.getLevelName(level.upper())
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(max(numeric, logging.WARNING))
