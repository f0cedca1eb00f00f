"""Log lines written by a background thread, so a slow stream never slows a request.

A request thread only stamps its record (the request id lives in a context
variable that only that thread can read) and puts it on a queue; one thread per
process formats the record and writes it. The guarantees:

- **Order.** One queue and one writer: lines appear in the order they were logged.
- **No lost line.** When the queue holds :data:`QUEUE_LIMIT` records, logging
  waits for room: a stream slower than the traffic for that long slows requests
  rather than growing memory without bound or dropping lines. At exit (``atexit``,
  a multiprocessing worker's own exit, or :func:`drain_all` before ``os._exit``)
  every queued line is written before the process ends.
- **Fork.** Threads do not survive a fork, and a lock held by one would be copied
  held. The writer is drained and stopped before every fork; the parent, and the
  child with a fresh queue, start it again with their next record.
- **Reconfiguration.** ``logging.config.dictConfig`` closes every handler there is,
  while the loggers it was not asked about keep theirs: gunicorn's and granian's
  logging setups call it in the master and in each worker, after
  :func:`~flaskserve.observability.logging.configure_logging`. Closing the handler
  writes what is queued and stops the writer until the next record, which starts
  it again. (It used to leave every later record to the caller's thread: under
  either server, each request formatted and wrote its own access line, in turn
  with the others, and a stalled stdout held every request; docs/performance.md,
  "Where a served request's CPU went".) Only the owner's :meth:`LogQueue.close`
  and the process's end (:func:`drain_all`) leave records to the caller's thread.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import multiprocessing.util
import os
import queue
import threading
import weakref
from typing import Any, Protocol

#: Records waiting to be written before logging makes the caller wait.
QUEUE_LIMIT = 10_000
#: How long the writer lets records gather after the first one before it writes them all. Woken
#: for every record, it cost more CPU than each request writing its own line
#: (docs/performance.md, "Where a served request's CPU went").
GATHER_S = 0.05

_queues: weakref.WeakSet[LogQueue] = weakref.WeakSet()
_hooks_installed = threading.Lock()
_hooks: list[bool] = []


class DeferredRecord(Protocol):
    """A record the writer makes (:meth:`record`), for a line whose caller only left its facts."""

    levelno: int

    def record(self) -> logging.LogRecord: ...

    def line(self, formatter: logging.Formatter | None) -> str | None:
        """The line ``formatter`` would make of :meth:`record`, if it can be made without it."""


class _Process:
    """What this process allows writers to do: start (normally), not now (a fork), never again (its end)."""

    forking = False
    ending = False


class _AfterFork:
    """What multiprocessing's after-fork registry holds a weak reference to."""


_AFTER_FORK = _AfterFork()


class QueuedHandler(logging.handlers.QueueHandler):
    """Hands records to the writer as they are: formatting is the writer's work, not the request's."""

    queue: queue.Queue[Any]

    def __init__(self, owner: LogQueue) -> None:
        super().__init__(queue.Queue(owner.limit))
        self.owner = owner

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # Arguments are rendered now: they may be mutable objects the caller changes later.
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        return record

    def handle(self, record: logging.LogRecord) -> Any:
        """:meth:`logging.Handler.handle` without the handler's lock: :meth:`enqueue` takes the owner's,
        and the target takes its own to write."""
        passed = self.filter(record)
        if passed:
            # From Python 3.12 on, a filter may return the record to emit in the given one's place.
            self.emit(passed if isinstance(passed, logging.LogRecord) else record)
        return passed

    def enqueue(self, record: logging.LogRecord | DeferredRecord) -> None:
        """Queue a record, or one the writer is to make; this handler's filters are the caller's to run."""
        owner = self.owner
        with owner.lock:
            if owner.running or owner.start_locked():
                self.queue.put(record)  # waits while the queue is full: never drops a line
                return
        # No writer (closed by its owner, the process ending, a fork under way): write in this thread.
        owner.target.handle(_made(record))

    def flush(self) -> None:
        """Wait until every record queued so far has been written."""
        writer = self.owner.writer
        if writer is not None:
            writer.hurry()
            self.queue.join()

    def close(self) -> None:
        """Write what is queued and stop the writer; the next record starts it again (module docstring)."""
        self.owner.drain()
        super().close()


class _Writer:
    """The thread that writes queued records: all those that gathered for ``gather_s`` at a time.

    Records come one a request; waking for each one costs more than the writing. The
    queue still orders them, and :meth:`stop` writes every one queued before it.
    """

    _STOP = object()

    def __init__(self, records: queue.Queue[Any], target: logging.Handler, gather_s: float) -> None:
        self._records = records
        self._target = target
        self._gather_s = gather_s
        self._hurry = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flaskserve-log-writer", daemon=True)
        self._thread.start()

    def hurry(self) -> None:
        """Write what has gathered now, without waiting for the rest of the gathering."""
        self._hurry.set()

    def stop(self) -> None:
        """Write every record queued so far, then end the thread."""
        self._records.put(self._STOP)
        self._hurry.set()
        self._thread.join()

    def _run(self) -> None:
        records, stop = self._records, self._STOP
        while True:
            batch = [records.get()]
            if batch[0] is not stop:
                self._hurry.wait(self._gather_s)
                self._hurry.clear()
            while batch[-1] is not stop:
                try:
                    batch.append(records.get_nowait())
                except queue.Empty:
                    break
            self._write([record for record in batch if record is not stop])
            for _ in batch:
                records.task_done()
            if batch[-1] is stop:
                return

    def _write(self, batch: list[logging.LogRecord | DeferredRecord]) -> None:
        """Hand records over as ``QueueListener(respect_handler_level=True)`` would; a stream: one write."""
        target = self._target
        batch = [record for record in batch if record.levelno >= target.level]
        if not isinstance(target, logging.StreamHandler):
            for record in batch:
                target.handle(_made(record))
            return
        # StreamHandler.emit, for the whole batch: one write and one flush (a system call each) in all.
        lines = []
        for item in batch:
            try:
                # A deferred record formats itself when it can: no record is made at all.
                line = (
                    None
                    if isinstance(item, logging.LogRecord) or target.filters
                    else item.line(target.formatter)
                )
                if line is None:
                    record = _made(item)
                    if not target.filter(record):
                        continue
                    line = target.format(record)
                lines.append(line + target.terminator)
            except Exception:
                target.handleError(_made(item))
        if not lines:
            return
        with target.lock:  # type: ignore[union-attr]
            try:
                target.stream.write("".join(lines))
                target.flush()
            except Exception:
                target.handleError(_made(batch[-1]))


class LogQueue:
    """A handler (:attr:`handler`) whose records ``target`` writes on a thread of its own.

    The writer starts with the first record, and again with the first record after
    each stop (:meth:`drain`, a fork, :meth:`QueuedHandler.close`).
    """

    def __init__(self, target: logging.Handler, limit: int = QUEUE_LIMIT, gather_s: float = GATHER_S) -> None:
        self.target = target
        self.limit = limit
        self.gather_s = gather_s
        self.lock = threading.Lock()
        self.closed = False
        self.writer: _Writer | None = None
        self.handler = QueuedHandler(self)
        _install_process_hooks()
        _queues.add(self)

    @property
    def running(self) -> bool:
        return self.writer is not None

    def start_locked(self) -> bool:
        """Start the writer if it may run now; whether it runs. Call with :attr:`lock` held."""
        if self.writer is None and not (self.closed or _Process.forking or _Process.ending):
            self.writer = _Writer(self.handler.queue, self.target, self.gather_s)
        return self.writer is not None

    def drain(self) -> None:
        """Write every queued record, then stop the writer (the next record starts it again)."""
        with self.lock:
            writer, self.writer = self.writer, None
        if writer is not None:
            writer.stop()
        self.target.flush()

    def close(self) -> None:
        """Write every queued record and stop the writer for good: later records are written by the caller."""
        with self.lock:
            self.closed = True
        self.drain()
        _queues.discard(self)

    def _renew_in_child(self) -> None:
        # The parent's queue and lock may have been copied in any state: start afresh.
        self.handler.queue = queue.Queue(self.limit)
        self.lock = threading.Lock()
        self.writer = None


def _made(record: logging.LogRecord | DeferredRecord) -> logging.LogRecord:
    return record if isinstance(record, logging.LogRecord) else record.record()


def drain_all() -> None:
    """Write every queued line of this ending process; call before ``os._exit``: it skips ``atexit``.

    Lines logged afterwards are written by the thread that logs them.
    """
    _Process.ending = True
    for log_queue in list(_queues):
        log_queue.drain()


def _before_fork() -> None:
    _Process.forking = True
    for log_queue in list(_queues):
        log_queue.drain()


def _after_fork_in_parent() -> None:
    _Process.forking = False


def _after_fork_in_child() -> None:
    for log_queue in list(_queues):
        log_queue._renew_in_child()
    _Process.forking = False


def _finalize_worker(_registry: object) -> None:
    # A multiprocessing child ends with os._exit after its finalizers, never running atexit.
    multiprocessing.util.Finalize(None, drain_all, exitpriority=0)


def _install_process_hooks() -> None:
    """Once per interpreter: drain at exit, and stop writers before a fork."""
    with _hooks_installed:
        if _hooks:
            return
        _hooks.append(True)
        atexit.register(drain_all)
        os.register_at_fork(
            before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
        )
        multiprocessing.util.register_after_fork(_AFTER_FORK, _finalize_worker)
