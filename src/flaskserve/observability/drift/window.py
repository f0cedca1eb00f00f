"""Each worker's rolling window of bin counts, summed over workers when it is read.

The window is cut into :data:`SLOTS` slots, numbered alike in every process by
a clock they share:

* a window of ``window_s`` seconds (:class:`TimeSlots`) numbers slots by wall-clock
  time, ``int(now // (window_s / SLOTS))``;
* a window of the last ``window_rows`` rows (:class:`RowSlots`) numbers them by a
  row counter per model version that every worker advances under a file lock
  (:class:`SharedRowCounter`): each row is counted into the slot of the position
  it takes, ``int(position // (window_rows / SLOTS))``; a batch of rows takes its
  positions with one advance of the counter.

A worker counts into the slot of now; when it moves on to a new slot it empties
the one that held the counts of ``SLOTS`` slots ago. A reader sums, over every
worker, the slots no older than the window — the current, partly filled slot and
the ``SLOTS - 1`` before it, so between nine tenths of the window and all of it —
and a drift shows up within a scrape and goes away once the window has passed it
(by time, or by the rows served since), whether or not a worker still gets traffic.

The counts live in ``prometheus_client`` gauges of mode ``all``: under
``flaskserve serve`` each worker's values are in its own file of the metrics
directory, written as they change, so a scrape answered by any worker reads
every worker's exact counts (a dead worker's counts age out with its slots).
These gauges carry the :data:`~flaskserve.observability.metrics.INTERNAL_PREFIX`,
which keeps them out of ``/metrics``: what is exposed is the drift computed from them.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.multiprocess import MultiProcessCollector

from flaskserve.observability.metrics import INTERNAL_PREFIX

__all__ = ["SLOTS", "DriftWindow", "RowSlots", "SharedRowCounter", "Slots", "TimeSlots", "WindowCounts"]

#: Slots the window is cut into: it moves forward by a tenth of its length at a time.
SLOTS = 10
_COUNTS = f"{INTERNAL_PREFIX}drift_window_count"
_EPOCHS = f"{INTERNAL_PREFIX}drift_window_epoch"
#: The bin label of the values counted outside the training range.
OUTSIDE = "outside"
#: The (role, feature, bin) under which each observed row is counted once.
_ROWS = ("rows", "", "rows")

Clock = Callable[[], float]
#: Where the row counters live, inside the metrics directory (``prometheus_client`` reads only its ``*.db``).
_ROW_COUNTERS = "drift-rows"


class Slots(Protocol):
    """How a window numbers its slots; the numbers only grow, and agree in every worker."""

    def take(self, model: str, version: str, rows: int) -> npt.NDArray[np.int64]:
        """The slot number of each of ``rows`` new rows of a model version, in order."""
        ...

    def current(self, model: str, version: str) -> int:
        """The slot number a reader counts the window back from."""
        ...


class TimeSlots:
    """Slots of ``window_s / SLOTS`` seconds of wall-clock time (``clock``, shared by every worker)."""

    def __init__(self, window_s: float, clock: Clock = time.time) -> None:
        self.window_s = window_s
        self._slot_s = window_s / SLOTS
        self._clock = clock

    def take(self, model: str, version: str, rows: int) -> npt.NDArray[np.int64]:
        return np.full(rows, self.current(model, version), dtype=np.int64)

    def current(self, model: str, version: str) -> int:
        return int(self._clock() // self._slot_s)


class SharedRowCounter:
    """How many rows each model version has been asked about, counted by every worker alike.

    With a ``directory`` (the metrics directory of ``flaskserve serve``) each
    model version's count is eight bytes in a file of its own, read and advanced
    under ``flock`` by whichever worker takes rows; without one, it is this
    process's count alone. Each process opens the files itself: a descriptor
    inherited through a fork would share its lock with the parent's. For the same
    reason the threads of one process take turns (an ``flock`` belongs to the open
    file, so one thread's unlock would release another's lock).
    """

    def __init__(self, directory: str | None = None) -> None:
        self._directory = Path(directory, _ROW_COUNTERS) if directory is not None else None
        self._local: dict[tuple[str, str], int] = {}
        self._files: dict[tuple[str, str], int] = {}
        self._pid = os.getpid()
        self._threads = threading.Lock()

    def advance(self, model: str, version: str, rows: int) -> int:
        """Count ``rows`` more rows; the position of the first of them (the count before)."""
        if self._directory is None:
            before = self._local.get((model, version), 0)
            self._local[(model, version)] = before + rows
            return before
        with self._threads:
            descriptor = self._file(model, version)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            try:
                before = _read_count(descriptor)
                os.pwrite(descriptor, (before + rows).to_bytes(8, "little"), 0)
            finally:
                fcntl.flock(descriptor, fcntl.LOCK_UN)
        return before

    def count(self, model: str, version: str) -> int:
        if self._directory is None:
            return self._local.get((model, version), 0)
        with self._threads:
            descriptor = self._file(model, version)
            fcntl.flock(descriptor, fcntl.LOCK_SH)
            try:
                return _read_count(descriptor)
            finally:
                fcntl.flock(descriptor, fcntl.LOCK_UN)

    def _file(self, model: str, version: str) -> int:
        assert self._directory is not None
        if self._pid != os.getpid():
            for inherited in self._files.values():
                os.close(inherited)  # the parent's descriptors: closing them here leaves the parent's open
            self._files, self._pid = {}, os.getpid()
        descriptor = self._files.get((model, version))
        if descriptor is None:
            self._directory.mkdir(exist_ok=True)
            # Hashed: model names and versions are not file names.
            name = hashlib.sha256(f"{model}\0{version}".encode()).hexdigest()[:32]
            descriptor = os.open(self._directory / name, os.O_RDWR | os.O_CREAT, 0o600)
            self._files[(model, version)] = descriptor
        return descriptor


def _read_count(descriptor: int) -> int:
    found = os.pread(descriptor, 8, 0)
    return int.from_bytes(found, "little") if len(found) == 8 else 0


class RowSlots:
    """Slots of ``window_rows / SLOTS`` rows, numbered by a model version's :class:`SharedRowCounter`."""

    def __init__(self, window_rows: int, counter: SharedRowCounter) -> None:
        self.window_rows = window_rows
        self._slot_rows = window_rows / SLOTS
        self._counter = counter

    def take(self, model: str, version: str, rows: int) -> npt.NDArray[np.int64]:
        first = self._counter.advance(model, version, rows)
        positions = np.arange(first, first + rows, dtype=np.int64)
        return np.floor_divide(positions, self._slot_rows).astype(np.int64)

    def current(self, model: str, version: str) -> int:
        return int(self._counter.count(model, version) // self._slot_rows)


@dataclass
class WindowCounts:
    """What a model version's window holds, summed over workers."""

    rows: int = 0
    #: Bin counts by (role, feature); role is ``input`` or ``output:METHOD``.
    bins: dict[tuple[str, str], dict[int, float]] = field(default_factory=lambda: defaultdict(dict))
    outside: dict[tuple[str, str], float] = field(default_factory=dict)

    def counts(self, role: str, feature: str, size: int) -> npt.NDArray[np.float64]:
        found = self.bins.get((role, feature), {})
        return np.array([found.get(i, 0.0) for i in range(size)], dtype=np.float64)


class DriftWindow:
    """One process's window; :meth:`read` sums every process's.

    ``slots`` numbers the window's slots (:class:`TimeSlots` or :class:`RowSlots`).
    ``multiprocess_dir`` is the metrics directory when values are kept in files
    (``flaskserve serve``), else ``None`` and the counts are this process's alone.
    """

    def __init__(self, slots: Slots, *, multiprocess_dir: str | None = None):
        self.slots = slots
        self._multiprocess_dir = multiprocess_dir
        self._registry = CollectorRegistry()
        labels = ["model", "version", "role", "feature", "bin", "slot"]
        self._counts = Gauge(
            _COUNTS, "Window counts (internal).", labels, registry=self._registry, multiprocess_mode="all"
        )
        self._epochs = Gauge(
            _EPOCHS,
            "Slot numbers (internal).",
            ["model", "version", "slot"],
            registry=self._registry,
            multiprocess_mode="all",
        )
        self._lock = threading.Lock()
        self._slot_of: dict[tuple[str, str], int] = {}
        # prometheus_client checks and locks on every labels() call; the few children recur.
        self._children: dict[tuple[str, ...], Any] = {}

    def add(
        self,
        model: str,
        version: str,
        slot: int,
        rows: int,
        cells: Iterable[tuple[tuple[str, str, str], int]],
    ) -> None:
        """Count ``rows`` rows, and ``n`` values into each ``((role, feature, bin), n)`` of ``cells``.

        They go into the slot numbered ``slot`` (a number from :meth:`Slots.take`;
        slots are filled in the order of their numbers). ``bin`` is the bin's index as
        text, or :data:`OUTSIDE` for values outside the training range.
        """
        with self._lock:
            index = str(self._enter_slot(model, version, slot))
            self._child(model, version, *_ROWS, index).inc(rows)
            for (role, feature, position), count in cells:
                self._child(model, version, role, feature, position, index).inc(count)

    def _child(self, *labels: str) -> Any:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._counts.labels(*labels)
        return child

    def _enter_slot(self, model: str, version: str, number: int) -> int:
        """The index of slot ``number``, emptied first if it still holds an older slot's counts."""
        index = number % SLOTS
        if self._slot_of.get((model, version)) != number:
            self._slot_of[(model, version)] = number
            for labels, child in self._children.items():
                if labels[0] == model and labels[1] == version and labels[5] == str(index):
                    child.set(0)
            self._epochs.labels(model, version, str(index)).set(number)
        return index

    def read(self) -> dict[tuple[str, str], WindowCounts]:
        """Every model version's counts over the window, summed over processes."""
        families = (
            MultiProcessCollector(None, path=self._multiprocess_dir).collect()  # type: ignore[no-untyped-call]
            if self._multiprocess_dir is not None
            else self._registry.collect()
        )
        epochs: dict[tuple[str, str, str, str], float] = {}
        counts: list[tuple[dict[str, str], float]] = []
        for family in families:
            if family.name == _EPOCHS:
                for sample in family.samples:
                    labels = sample.labels
                    slot = (labels.get("pid", ""), labels["model"], labels["version"], labels["slot"])
                    epochs[slot] = sample.value
            elif family.name == _COUNTS:
                counts.extend((sample.labels, sample.value) for sample in family.samples)
        now: dict[tuple[str, str], int] = {}
        windows: dict[tuple[str, str], WindowCounts] = defaultdict(WindowCounts)
        for labels, value in counts:
            epoch = epochs.get((labels.get("pid", ""), labels["model"], labels["version"], labels["slot"]))
            model = (labels["model"], labels["version"])
            if model not in now:
                now[model] = self.slots.current(*model)
            if epoch is None or not 0 <= now[model] - epoch < SLOTS or not value:
                continue
            window = windows[(labels["model"], labels["version"])]
            key = (labels["role"], labels["feature"])
            if (labels["role"], labels["feature"], labels["bin"]) == _ROWS:
                window.rows += int(value)
            elif labels["bin"] == OUTSIDE:
                window.outside[key] = window.outside.get(key, 0.0) + value
            else:
                bins = window.bins[key]
                bins[int(labels["bin"])] = bins.get(int(labels["bin"]), 0.0) + value
        return dict(windows)
