"""The bounded queue of one worker, and the thread that drains it into a sink.

Guarantees:

* **A request waits for nothing but the enqueue.** :meth:`LogWriter.submit`
  puts the record on a queue of at most ``queue_size`` records without blocking;
  when the queue is full the record is dropped and counted
  (``flaskserve_inference_log_dropped_total{reason="queue_full"}``).
* **A request never fails because of the log.** Only the writer's thread talks to
  the sink; a batch the sink refuses (it is down, the connection was cut) is
  dropped and counted (``reason="sink_error"``), the sink is reopened after a
  pause that grows to :data:`MAX_RETRY_S`, and writing resumes once it answers.
* **Written in batches**, of up to ``batch_size`` records, at least every
  ``flush_interval_s``.
* **Flushed on a graceful stop**: the records queued when the process exits
  normally are written first, for up to ``close_timeout_s``.
* **One writer per process.** The app is built before gunicorn forks, and a
  thread does not survive a fork: each worker starts its own thread and queue on
  its first record.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from flaskserve.observability.inference_log.record import InferenceRecord

__all__ = ["DROP_REASONS", "MAX_RETRY_S", "LogWriter", "Sink"]

log = logging.getLogger("flaskserve.inference_log")

#: Why a record may be dropped: the worker's queue was full, or its batch could not be written.
DROP_REASONS = ("queue_full", "sink_error")
#: Longest pause between attempts to reach a sink that is down.
MAX_RETRY_S = 5.0
_FIRST_RETRY_S = 0.25
#: How often a failing sink is reported in the log, at most.
_REPORT_EVERY_S = 30.0


class Sink(Protocol):
    """Where records go. Called from the writer's thread only; raising drops (and counts) the batch."""

    def write(self, records: Sequence[InferenceRecord]) -> None: ...

    def close(self) -> None: ...


class DropCounter(Protocol):
    def __call__(self, reason: str, count: int) -> None: ...


class LogWriter:
    """Queue records in this process and write them to a sink from a thread of its own.

    ``open_sink`` makes a sink; it is called on the writer's thread, again after a
    failure. ``dropped(reason, n)`` and ``written(n)`` count what became of records.
    """

    def __init__(
        self,
        open_sink: Callable[[], Sink],
        *,
        dropped: DropCounter,
        written: Callable[[int], None],
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.5,
        close_timeout_s: float = 5.0,
    ) -> None:
        self._open_sink = open_sink
        self._dropped = dropped
        self._written = written
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._close_timeout_s = close_timeout_s
        self._start_lock = threading.Lock()
        self._pid: int | None = None
        self._queue: queue.Queue[InferenceRecord | None] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def submit(self, record: InferenceRecord) -> None:
        """Queue ``record`` for writing, or drop and count it when the queue is full. Never blocks."""
        if self._pid != os.getpid():
            self._start()
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._dropped("queue_full", 1)

    def close(self) -> None:
        """Write what is queued (for up to ``close_timeout_s``) and stop the thread."""
        thread = self._thread
        if thread is None or self._pid != os.getpid() or not thread.is_alive():
            return
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=self._close_timeout_s)
        thread.join(self._close_timeout_s)

    def _start(self) -> None:
        with self._start_lock:
            if self._pid == os.getpid():
                return
            # A fresh queue and thread in this process: the parent's did not survive the fork.
            self._queue = queue.Queue(self._queue_size)
            self._stopping = threading.Event()
            self._thread = threading.Thread(target=self._run, name="flaskserve-inference-log", daemon=True)
            self._thread.start()
            self._pid = os.getpid()
            atexit.register(self.close)

    def _run(self) -> None:
        sink: Sink | None = None
        retry_s = _FIRST_RETRY_S
        last_report = -_REPORT_EVERY_S
        while True:
            batch, last = self._next_batch()
            if batch:
                try:
                    if sink is None:
                        sink = self._open_sink()
                    sink.write(batch)
                except Exception as exc:
                    self._dropped("sink_error", len(batch))
                    now = time.monotonic()
                    if now - last_report >= _REPORT_EVERY_S:
                        last_report = now
                        log.warning(
                            "inference log records dropped: the sink failed",
                            extra={"records": len(batch), "error": f"{type(exc).__name__}: {exc}"},
                        )
                    _closed(sink)
                    sink = None
                    if not last:
                        # Waiting fills the queue; what overflows is counted as queue_full.
                        self._stopping.wait(retry_s)
                        retry_s = min(retry_s * 2, MAX_RETRY_S)
                    continue
                self._written(len(batch))
                retry_s = _FIRST_RETRY_S
            if last:
                _closed(sink)
                return

    def _next_batch(self) -> tuple[list[InferenceRecord], bool]:
        """Up to ``batch_size`` records, waiting at most the flush interval; and whether to stop after."""
        batch: list[InferenceRecord] = []
        deadline = time.monotonic() + self._flush_interval_s
        while len(batch) < self._batch_size:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                if batch or not self._stopping.is_set():
                    return batch, False
                return batch, True
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False


def _closed(sink: Sink | None) -> None:
    if sink is not None:
        try:
            sink.close()
        except Exception as exc:  # closing a broken connection may fail too; it is gone either way
            log.debug("closing the inference log sink failed", extra={"error": str(exc)})
