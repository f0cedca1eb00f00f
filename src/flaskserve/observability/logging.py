"""Structured logs: one JSON object per line (or readable text in a terminal).

Fields passed with ``extra=`` become keys of the JSON object, so a log line
can be filtered by model, request id or error id without parsing prose.
Every line written while a request is handled carries that request's id
(:class:`RequestIdFilter`), so a bad prediction can be traced from the
client's ``X-Request-ID`` to the model's traceback.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

import orjson

from flaskserve.observability.context import current_request_id
from flaskserve.observability.log_queue import LogQueue, QueuedHandler

#: The logger of the one line per request (see :mod:`flaskserve.observability.tracker`).
ACCESS_LOGGER = "flaskserve.access"
#: The message of every access line: its facts are its fields.
ACCESS_MESSAGE = "request"

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
        return self.keeps(getattr(record, "status", None))

    def keeps(self, status: object) -> bool:
        """Whether the line of an answer with ``status`` is written."""
        if not isinstance(status, int) or not 200 <= status < 300:
            return True
        return self.draw() < self.share


class AccessEntry:
    """An access line as the request's thread leaves it: time, level and fields; the writer makes the record.

    ``Logger.makeRecord`` looks up the time, the process and its name, the thread
    and its name and the source file's name for each record, and ``Logger.handle``
    then walks filters and handlers: about 4.5% of the GIL-held time of a served
    one-row prediction's thread (docs/performance.md, "The access line and the body
    read, second pass"). :func:`queue_access_line` runs what that walk would have run and queues
    this instead; :meth:`record` gives the writer the record ``makeRecord`` would
    have made, from one made once per process and logger for the rest.
    """

    __slots__ = ("created", "fields", "levelno", "logger", "pathname", "thread")

    def __init__(
        self, logger: str, levelno: int, pathname: str, fields: dict[str, Any], created: float, thread: int
    ) -> None:
        self.logger = logger
        self.levelno = levelno
        self.pathname = pathname
        self.fields = fields
        self.created = created
        self.thread = thread

    def record(self) -> logging.LogRecord:
        record = logging.LogRecord.__new__(logging.LogRecord)
        attributes = record.__dict__
        attributes.update(_prototype(self.logger, self.pathname))
        created = self.created
        attributes["levelno"] = self.levelno
        attributes["levelname"] = logging.getLevelName(self.levelno)
        attributes["created"] = created
        attributes["msecs"] = _msecs(created)
        attributes["relativeCreated"] = (created - logging._startTime) * 1000  # type: ignore[attr-defined]
        attributes["thread"] = self.thread if logging.logThreads else None
        # The name would cost the request's thread a lookup; no flaskserve line shows it.
        attributes["threadName"] = None
        attributes.update(self.fields)
        return record

    def line(self, formatter: logging.Formatter | None) -> str | None:
        """The JSON line, straight from the fields: the record is only made for another formatter."""
        if type(formatter) is not JsonFormatter:
            return None
        created = self.created
        return formatter.line(
            created,
            _msecs(created),
            logging.getLevelName(self.levelno),
            self.logger,
            _prototype(self.logger, self.pathname)["process"],
            ACCESS_MESSAGE,
            self.fields,
        )


def _msecs(created: float) -> float:
    """A record's ``msecs``, as ``LogRecord`` makes it of its ``created``."""
    return int((created - int(created)) * 1000) + 0.0


#: The attributes an access record shares with every other of its process, by (logger, file);
#: forgotten in a forked child, whose records name its own process.
_PROTOTYPES: dict[tuple[str, str], dict[str, Any]] = {}
os.register_at_fork(after_in_child=_PROTOTYPES.clear)


def _prototype(logger: str, pathname: str) -> dict[str, Any]:
    key = (logger, pathname)
    found = _PROTOTYPES.get(key)
    if found is None:
        found = _PROTOTYPES[key] = vars(
            logging.LogRecord(logger, logging.INFO, pathname, 0, ACCESS_MESSAGE, (), None)
        )
    return found


def queue_access_line(logger: logging.Logger, levelno: int, fields: dict[str, Any], pathname: str) -> bool:
    """Queue the access line of ``fields`` as an :class:`AccessEntry` if flaskserve's handler alone takes it.

    That is the set-up :func:`configure_logging` leaves: no handler on ``logger``
    itself, which passes its records to its parent, whose one handler is
    flaskserve's queue with its request id filter (a no-op here: the fields name
    the request) and goes no further. The logger's own filters may be
    :class:`AccessSample` ones, which are run here. Whether the line was dealt
    with (queued, or left out by sampling); when not, the caller logs it the
    standard way: a handler, level or filter of anyone else's sees the record
    it always saw.
    """
    if logger.handlers or logger.disabled or not logger.propagate:
        return False
    parent = logger.parent
    if parent is None or parent.propagate or len(parent.handlers) != 1:
        return False
    handler = parent.handlers[0]
    if type(handler) is not QueuedHandler or handler.level > levelno:
        return False
    if fields.get("request_id") is None or any(type(kept) is not RequestIdFilter for kept in handler.filters):
        return False
    samples = [sample for sample in logger.filters if type(sample) is AccessSample]
    if len(samples) != len(logger.filters):
        return False
    status = fields.get("status")
    if not all(sample.keeps(status) for sample in samples):
        return True
    handler.enqueue(AccessEntry(logger.name, levelno, pathname, fields, time.time(), threading.get_ident()))
    return True


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        #: The last second :meth:`line` wrote and its text: lines come many a second.
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        extras = {
            key: value
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_")
        }
        return self.line(
            record.created,
            record.msecs,
            record.levelname,
            record.name,
            record.process,
            record.getMessage(),
            extras,
            self.formatException(record.exc_info) if record.exc_info else None,
        )

    def line(
        self,
        created: float,
        msecs: float,
        levelname: str,
        logger: str,
        pid: int | None,
        message: str,
        extras: dict[str, Any],
        traceback: str | None = None,
    ) -> str:
        """The line of a record of these attributes (``extras``: those passed with ``extra=``)."""
        second = int(created)
        stamp = self._second
        if stamp[0] != second:
            stamp = self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        document: dict[str, Any] = {
            "time": f"{stamp[1]}.{int(msecs):03d}Z",
            "level": levelname.lower(),
            "logger": logger,
            # Which gunicorn worker wrote the line: a worker's requests can be told apart.
            "pid": pid,
            "message": message,
            **extras,
        }
        if traceback:
            document["traceback"] = traceback
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
