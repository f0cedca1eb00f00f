"""The bounded queue of one worker, and the thread that drains it into a sink.

Guarantees:

* **A request waits for nothing but the enqueue.** :meth:`LogWriter.submit`
  appends the request's facts to a list of at most ``queue_size`` entries, under
  a lock held for the append alone; when the list is full the entry is dropped
  and counted (``flaskserve_inference_log_dropped_total{reason="queue_full"}``).
  The writer's thread is not woken per record — it wakes every
  ``flush_interval_s``, or once ``batch_size`` entries wait — and it is there,
  not on the request, that each record is built and serialised.
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
import logging
import multiprocessing.util
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from flaskserve.observability.inference_log.record import InferenceRecord, RequestFacts

__all__ = ["DROP_REASONS", "MAX_RETRY_S", "Entry", "LogWriter", "Sink"]

log = logging.getLogger("flaskserve.inference_log")

#: Why a record may be dropped: the worker's queue was full, or its batch could not be written.
DROP_REASONS = ("queue_full", "sink_error")
#: Longest pause between attempts to reach a sink that is down.
MAX_RETRY_S = 5.0
_FIRST_RETRY_S = 0.25
#: How often a failing sink is reported in the log, at most.
_REPORT_EVERY_S = 30.0

#: What is queued: a request's facts (the record is built from them on the writer's thread), or a record.
Entry = RequestFacts | InferenceRecord


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
        # Entries waiting for the writer, oldest first; requests append, the writer takes batches.
        self._queued: list[Entry] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def submit(self, entry: Entry) -> None:
        """Queue ``entry`` for writing, or drop and count it when the queue is full. Never blocks."""
        if self._pid != os.getpid():
            self._start()
        with self._lock:
            waiting = len(self._queued)
            if waiting < self._queue_size:
                self._queued.append(entry)
        if waiting >= self._queue_size:
            self._dropped("queue_full", 1)
        elif waiting + 1 == self._batch_size:
            # A whole batch waits: worth writing before the interval is up. Once per batch, not per record.
            self._wake.set()

    def close(self) -> None:
        """Write what is queued (for up to ``close_timeout_s``) and stop the thread."""
        thread = self._thread
        if thread is None or self._pid != os.getpid() or not thread.is_alive():
            return
        self._stopping.set()
        self._wake.set()
        thread.join(self._close_timeout_s)

    def _start(self) -> None:
        with self._start_lock:
            if self._pid == os.getpid():
                return
            # A fresh queue and thread in this process: the parent's did not survive the fork.
            self._queued = []
            self._lock = threading.Lock()
            self._wake = threading.Event()
            self._stopping = threading.Event()
            self._thread = threading.Thread(target=self._run, name="flaskserve-inference-log", daemon=True)
            self._thread.start()
            self._pid = os.getpid()
            atexit.register(self.close)
            # A multiprocessing child (a granian worker) leaves through os._exit after these finalizers.
            multiprocessing.util.Finalize(None, self.close, exitpriority=10)

    def _run(self) -> None:
        sink: Sink | None = None
        retry_s = _FIRST_RETRY_S
        last_report = -_REPORT_EVERY_S
        while True:
            self._wake.wait(self._flush_interval_s)
            self._wake.clear()
            # Read before taking: what was queued before the stop is written, then the thread ends.
            last = self._stopping.is_set()
            while batch := self._take():
                try:
                    records = [_built(entry) for entry in batch]
                    if sink is None:
                        sink = self._open_sink()
                    sink.write(records)
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
                    if not self._stopping.is_set():
                        # Waiting fills the queue; what overflows is counted as queue_full.
                        self._stopping.wait(retry_s)
                        retry_s = min(retry_s * 2, MAX_RETRY_S)
                    continue
                self._written(len(batch))
                retry_s = _FIRST_RETRY_S
            if last:
                _closed(sink)
                return

    def _take(self) -> list[Entry]:
        """The oldest ``batch_size`` entries queued (or fewer), taken off the queue."""
        with self._lock:
            batch = self._queued[: self._batch_size]
            del self._queued[: self._batch_size]
        return batch


def _built(entry: Entry) -> InferenceRecord:
    return entry if isinstance(entry, InferenceRecord) else entry.record()


def _closed(sink: Sink | None) -> None:
    if sink is not None:
        try:
            sink.close()
        except Exception as exc:  # closing a broken connection may fail too; it is gone either way
            log.debug("closing the inference log sink failed", extra={"error": str(exc)})
