"""The worker's threads: connections go to them through one queue, and come back through gunicorn's.

gunicorn's ``gthread`` worker hands each request to a
:class:`concurrent.futures.ThreadPoolExecutor` and asks the future to call back
when it is done. Per request that builds a future (a condition and its lock), a
work item, a done-callback list, and takes the executor's shutdown lock and idle
semaphore; with 64 clients on a hello-world app, the worker used about a tenth
more CPU a request with the executor than with this pool (docs/performance.md,
"Threads, keep-alive and backpressure"). Nothing of it is needed here: the event
loop only ever hands a connection over and learns when its thread is done with
it, and that second half already has a queue of its own (gunicorn's method
queue, which wakes the event loop). So :class:`Pool` is a queue of connections
and the threads that take from it.

As under the executor: at most ``threads`` connections are served at once, the
rest wait in the queue in order, a stop lets the threads finish what they hold,
and an exception escaping the serving function (gunicorn's ``handle`` catches
its own) reaches the event loop as the outcome's :meth:`Outcome.result`. Unlike
the executor's, the threads are daemons: a worker that exits does not wait for
them. It exits with requests in progress only past the graceful timeout, when
the master kills it anyway (and :mod:`flaskserve.serving.signals` ends it), or on
a quick stop; and a worker that fails to start exits instead of hanging on its
idle threads.

gunicorn's method queue wakes the event loop by writing a byte to a pipe for
each callback, a system call in each thread for each request. Under load, the
event loop takes many connections back for each wake; :class:`MethodQueue`
writes only when no wake is already pending, and the event loop runs everything
queued when it wakes.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from functools import partial
from queue import Empty, SimpleQueue
from typing import Any

from gunicorn.workers.gthread import PollableMethodQueue

__all__ = ["MethodQueue", "Outcome", "Pool"]

#: Most callbacks the event loop runs for one wake before it looks at its sockets again.
MAX_CALLBACKS = 64


class Outcome:
    """What a thread made of a connection, shaped as gunicorn's ``finish_request`` reads a future."""

    __slots__ = ("_error", "_value")

    def __init__(self, value: object = None, error: BaseException | None = None) -> None:
        self._value = value
        self._error = error

    def cancelled(self) -> bool:
        return False

    def result(self) -> object:
        if self._error is not None:
            raise self._error
        return self._value


class Pool:
    """``threads`` threads, each serving a connection taken from the queue, then reporting it done.

    ``serve(conn)`` runs in a thread; ``done(conn, outcome)`` is called in that
    thread afterwards and must hand the outcome back to the event loop. The
    threads are started at once: a worker's threads are all needed at the first
    burst of load.
    """

    def __init__(
        self, threads: int, serve: Callable[[Any], object], done: Callable[[Any, Outcome], None]
    ) -> None:
        self._serve = serve
        self._done = done
        self._queue: SimpleQueue[Any] = SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"flaskserve-request-{number}", daemon=True)
            for number in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def hand(self, conn: Any) -> None:
        """Serve ``conn`` in the next free thread."""
        self._queue.put(conn)

    def shutdown(self, wait: bool = True) -> None:
        """Let each thread finish what it holds and what is queued, then end (the executor's call)."""
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join()

    def _work(self) -> None:
        while (conn := self._queue.get()) is not None:
            try:
                outcome = Outcome(self._serve(conn))
            except BaseException as error:  # as the executor does: the event loop decides
                outcome = Outcome(error=error)
            self._done(conn, outcome)


class MethodQueue(PollableMethodQueue):  # type: ignore[misc]
    """gunicorn's queue of callbacks for the event loop, its pipe written only when no wake is pending.

    A callback is queued before the pending mark is read, and the event loop
    clears the mark before it takes what is queued: a callback that saw the
    mark set is taken by the run the mark announced.
    """

    def __init__(self) -> None:
        super().__init__()
        self._wake_pending = False

    def defer(self, callback: Callable[..., object], *args: Any) -> None:
        self._queue.put(partial(callback, *args))
        if not self._wake_pending:
            self._wake()

    def run_callbacks(self, _fileobj: Any, max_callbacks: int = MAX_CALLBACKS) -> None:
        with contextlib.suppress(OSError):  # nothing to read: a wake already taken
            os.read(self._read_fd, 4096)
        self._wake_pending = False
        for _ in range(max_callbacks):
            try:
                callback = self._queue.get_nowait()
            except Empty:
                return
            callback()
        if not self._queue.empty():
            # The rest on the next turn of the loop, after its sockets.
            self._wake()

    def _wake(self) -> None:
        self._wake_pending = True
        with contextlib.suppress(OSError):  # the pipe is full: the event loop is due to wake anyway
            os.write(self._write_fd, b"\x00")
