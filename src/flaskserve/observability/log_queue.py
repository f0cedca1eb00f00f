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
  held. The writer is drained and stopped before every fork, then started again
  in the parent and, with a fresh queue, in the child.
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
from typing import Any

#: Records waiting to be written before logging makes the caller wait.
QUEUE_LIMIT = 10_000

_queues: weakref.WeakSet[LogQueue] = weakref.WeakSet()
_hooks_installed = threading.Lock()
_hooks: list[bool] = []


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

    def enqueue(self, record: logging.LogRecord) -> None:
        with self.owner.lock:
            if self.owner.running:
                self.queue.put(record)  # waits while the queue is full: never drops a line
                return
        # No writer (after the drain at exit, or around a fork): write in this thread.
        self.owner.target.handle(record)

    def flush(self) -> None:
        """Wait until every record queued so far has been written."""
        if self.owner.running:
            self.queue.join()

    def close(self) -> None:
        """Write what is queued and stop the writer; later records are written in the caller's thread."""
        self.owner.close()
        super().close()


class LogQueue:
    """A handler (:attr:`handler`) whose records ``target`` writes on a thread of its own."""

    def __init__(self, target: logging.Handler, limit: int = QUEUE_LIMIT) -> None:
        self.target = target
        self.limit = limit
        self.lock = threading.Lock()
        self._listener: logging.handlers.QueueListener | None = None
        self.handler = QueuedHandler(self)
        _install_process_hooks()
        _queues.add(self)
        self.start()

    @property
    def running(self) -> bool:
        return self._listener is not None

    def start(self) -> None:
        with self.lock:
            if self._listener is None:
                self._listener = logging.handlers.QueueListener(
                    self.handler.queue, self.target, respect_handler_level=True
                )
                self._listener.start()

    def drain(self) -> None:
        """Write every queued record, then stop the writer thread (:meth:`start` resumes it)."""
        with self.lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()  # the stop mark is queued after every record: they are all written first
        self.target.flush()

    def close(self) -> None:
        self.drain()
        _queues.discard(self)

    def _renew_in_child(self) -> None:
        # The parent's queue and lock may have been copied in any state: start afresh.
        self.handler.queue = queue.Queue(self.limit)
        self.lock = threading.Lock()
        self._listener = None
        self.start()


def drain_all() -> None:
    """Write every queued line of this process; call before ``os._exit``, which skips ``atexit``."""
    for log_queue in list(_queues):
        log_queue.drain()


def _restart_all() -> None:
    for log_queue in list(_queues):
        log_queue.start()


def _renew_all_in_child() -> None:
    for log_queue in list(_queues):
        log_queue._renew_in_child()


def _finalize_worker(_registry: object) -> None:
    # A multiprocessing child ends with os._exit after its finalizers, never running atexit.
    multiprocessing.util.Finalize(None, drain_all, exitpriority=0)


def _install_process_hooks() -> None:
    """Once per interpreter: drain at exit, and stop and restart writers around a fork."""
    with _hooks_installed:
        if _hooks:
            return
        _hooks.append(True)
        atexit.register(drain_all)
        os.register_at_fork(
            before=drain_all, after_in_parent=_restart_all, after_in_child=_renew_all_in_child
        )
        multiprocessing.util.register_after_fork(_AFTER_FORK, _finalize_worker)
