"""Adaptive micro-batching: concurrent requests for one model method become one estimator call.

A :class:`Batcher` serves one (model version, method). It starts no thread: it
uses a leader/follower scheme among the request threads themselves. The first
request to arrive while no batch is being formed becomes the *leader*; it waits
for more rows (at most ``max_delay_s`` after the oldest queued request arrived,
and never once the queue holds ``max_rows`` rows), takes the queue's head as one
batch, calls the model once and hands every member its own slice of the answer.
Requests that arrive meanwhile are *followers*: each waits on its own event.
When the leader is done it promotes the request now at the head of the queue,
which leads the next batch. So at most one batch per batcher is in the model at
a time, and while it runs the next one fills: the busier the server, the larger
the batches, and a lone request never waits for company that cannot come (see
:class:`Occupancy`).

Guarantees:

* rows come back in order, and a request only ever receives its own rows;
* a request of ``max_rows`` rows or more runs on its own, never queued or split;
* when a batched call fails, every member is retried on its own, so a request
  that poisons a batch fails alone and the others still get their answers
  (a model that fails on everything costs one extra call per request, once);
* a batched call that runs out of time (:class:`~flaskserve.errors.PredictionTimeout`)
  is not retried: every member has waited its time already, and each gets the
  timeout error. So a request waits at most two timeouts and the batch delay:
  the batch ahead of it, then its own;
* no thread is started, so a batcher made before ``fork`` is safe, though the
  service makes them lazily in each worker anyway.

Pure Python and numpy: nothing here knows about HTTP.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from flaskserve.errors import PredictionTimeout
from flaskserve.inference.clock import Clock, SystemClock

Matrix = npt.NDArray[Any]
#: ``(rows, requests, queue_wait_s)`` of each batch formed.
BatchListener = Callable[[int, int, float], None]


class Occupancy:
    """How many requests are inside this process right now.

    The WSGI edge counts requests in and out; a batch leader stops waiting once
    every request in the process is already in its queue, because then no other
    request can join before one of them is answered. This is what keeps batching
    free for a lone client: it never waits ``max_batch_delay`` for nobody.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def enter(self) -> None:
        with self._lock:
            self._count += 1

    def leave(self) -> None:
        with self._lock:
            self._count -= 1

    @property
    def count(self) -> int:
        return self._count


@dataclass(frozen=True)
class BatchResult:
    """One request's share of a batched call."""

    values: Matrix
    #: Rows in the model call that produced ``values``.
    batch_rows: int


class _Pending:
    """A request waiting in the queue, and later its answer."""

    __slots__ = ("arrived", "done", "error", "event", "matrix", "promoted", "result", "rows")

    def __init__(self, matrix: Matrix, arrived: float) -> None:
        self.matrix = matrix
        self.rows = int(matrix.shape[0])
        self.arrived = arrived
        self.event = threading.Event()
        self.done = False
        self.promoted = False
        self.result: BatchResult | None = None
        self.error: BaseException | None = None

    def answer(self) -> BatchResult:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class Batcher:
    """Merges concurrent calls of one function on row matrices into single calls.

    ``call`` takes a 2-D matrix and returns one answer row per input row; it is
    expected to raise a ready-to-show error (the service passes
    :func:`~flaskserve.inference.service.call_isolated`).
    """

    def __init__(
        self,
        call: Callable[[Matrix], Matrix],
        *,
        max_rows: int,
        max_delay_s: float,
        clock: Clock | None = None,
        occupancy: Occupancy | None = None,
        on_batch: BatchListener | None = None,
    ) -> None:
        if max_rows < 2:
            raise ValueError("a batcher needs max_rows of at least 2; use the call directly instead")
        self._call = call
        self.max_rows = max_rows
        self.max_delay_s = max(0.0, max_delay_s)
        self._clock: Clock = clock or SystemClock()
        self._occupancy = occupancy
        self._on_batch = on_batch
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        # Invariant: the queue is non-empty only while a leader exists.
        self._leading = False

    def submit(self, matrix: Matrix) -> BatchResult:
        """This matrix's answer, computed alone or as part of a batch."""
        rows = int(matrix.shape[0])
        if rows >= self.max_rows:
            return BatchResult(self._call(matrix), rows)
        item = _Pending(matrix, self._clock.monotonic())
        with self._lock:
            self._queue.append(item)
            self._queued_rows += rows
            lead = not self._leading
            if lead:
                self._leading = True
            elif self._ready():
                # Woken only when its wait is over: each wake costs the leader a turn at the GIL.
                self._arrived.notify()
        if not lead:
            item.event.wait()
            if item.done:
                return item.answer()
            # Promoted: this request is at the head of the queue and leads the next batch.
        self._lead(item)
        return item.answer()

    # -- the leader's work -------------------------------------------------------------

    def _lead(self, own: _Pending) -> None:
        batch: list[_Pending] = []
        try:
            batch, waited = self._collect()
            if self._on_batch is not None:
                self._on_batch(sum(p.rows for p in batch), len(batch), waited)
            self._run(batch)
        except BaseException as error:
            for pending in batch:
                if not pending.done:
                    pending.error, pending.done = error, True
            raise
        finally:
            for pending in batch:
                pending.event.set()
            self._hand_off(own)

    def _collect(self) -> tuple[list[_Pending], float]:
        """Wait until the batch is worth running, then take it off the queue's head."""
        clock = self._clock
        with self._lock:
            deadline = self._queue[0].arrived + self.max_delay_s
            while not self._ready():
                remaining = deadline - clock.monotonic()
                if remaining <= 0:
                    break
                clock.wait(self._arrived, remaining)
            waited = clock.monotonic() - self._queue[0].arrived
            batch: list[_Pending] = []
            rows = 0
            while self._queue and rows + self._queue[0].rows <= self.max_rows:
                pending = self._queue.popleft()
                rows += pending.rows
                batch.append(pending)
            self._queued_rows -= rows
        return batch, waited

    def _ready(self) -> bool:
        """The queue holds a full batch, or every request in the process (no one else can join)."""
        if self._queued_rows >= self.max_rows:
            return True
        occupancy = self._occupancy
        return occupancy is not None and len(self._queue) >= occupancy.count

    def _run(self, batch: list[_Pending]) -> None:
        if len(batch) == 1:
            self._run_alone(batch[0])
            return
        matrix = np.concatenate([pending.matrix for pending in batch])
        rows = int(matrix.shape[0])
        try:
            values = self._call(matrix)
        except PredictionTimeout as error:
            for pending in batch:
                pending.error, pending.done = error, True
            return
        except Exception:
            # Find the culprit(s): each member gets its own call, its own answer or its own error.
            for pending in batch:
                self._run_alone(pending)
            return
        start = 0
        for pending in batch:
            stop = start + pending.rows
            pending.result = BatchResult(values[start:stop], rows)
            pending.done = True
            start = stop

    def _run_alone(self, pending: _Pending) -> None:
        try:
            pending.result = BatchResult(self._call(pending.matrix), pending.rows)
        except Exception as error:
            pending.error = error
        pending.done = True

    def _hand_off(self, own: _Pending) -> None:
        with self._lock:
            if not own.done:  # interrupted before its batch ran: leave no orphan at the head
                self._queue.remove(own)
                self._queued_rows -= own.rows
            if self._queue:
                head = self._queue[0]
                head.promoted = True
                head.event.set()
            else:
                self._leading = False
