"""Each worker's rolling window of bin counts, summed over workers when it is read.

The window is ``window_s`` seconds cut into :data:`SLOTS` slots of wall-clock
time, numbered alike in every process (``int(now // slot_s)``). A worker counts
into the slot of now; when it moves on to a new slot it empties the one that
held the counts of ``SLOTS`` slots ago. A reader sums, over every worker, the
slots no older than the window — so a drift shows up within a scrape and goes
away once the window has passed it, whether or not a worker still gets traffic.

The counts live in ``prometheus_client`` gauges of mode ``all``: under
``flaskserve serve`` each worker's values are in its own file of the metrics
directory, written as they change, so a scrape answered by any worker reads
every worker's exact counts (a dead worker's counts age out with its slots).
These gauges carry the :data:`~flaskserve.observability.metrics.INTERNAL_PREFIX`,
which keeps them out of ``/metrics``: what is exposed is the drift computed from them.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.multiprocess import MultiProcessCollector

from flaskserve.observability.metrics import INTERNAL_PREFIX

__all__ = ["SLOTS", "DriftWindow", "WindowCounts"]

#: Slots the window is cut into: it moves forward by a tenth of its length at a time.
SLOTS = 10
_COUNTS = f"{INTERNAL_PREFIX}drift_window_count"
_EPOCHS = f"{INTERNAL_PREFIX}drift_window_epoch"
#: The bin label of the values counted outside the training range.
OUTSIDE = "outside"
#: The (role, feature, bin) under which each observed row is counted once.
_ROWS = ("rows", "", "rows")

Clock = Callable[[], float]


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

    ``multiprocess_dir`` is the metrics directory when values are kept in files
    (``flaskserve serve``), else ``None`` and the counts are this process's alone.
    ``clock`` is wall-clock time in seconds, shared by every worker.
    """

    def __init__(self, window_s: float, *, multiprocess_dir: str | None = None, clock: Clock = time.time):
        self.window_s = window_s
        self.slot_s = window_s / SLOTS
        self._clock = clock
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

    def now_slot(self) -> int:
        return int(self._clock() // self.slot_s)

    def add(
        self, model: str, version: str, rows: int, cells: Iterable[tuple[tuple[str, str, str], int]]
    ) -> None:
        """Count ``rows`` rows, and ``n`` values into each ``((role, feature, bin), n)`` of ``cells``.

        ``bin`` is the bin's index as text, or :data:`OUTSIDE` for values outside the training range.
        """
        with self._lock:
            slot = str(self._enter_slot(model, version))
            self._child(model, version, *_ROWS, slot).inc(rows)
            for (role, feature, position), count in cells:
                self._child(model, version, role, feature, position, slot).inc(count)

    def _child(self, *labels: str) -> Any:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._counts.labels(*labels)
        return child

    def _enter_slot(self, model: str, version: str) -> int:
        """The slot index to count into now, emptied first if it still holds an older slot's counts."""
        number = self.now_slot()
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
        now = self.now_slot()
        windows: dict[tuple[str, str], WindowCounts] = defaultdict(WindowCounts)
        for labels, value in counts:
            epoch = epochs.get((labels.get("pid", ""), labels["model"], labels["version"], labels["slot"]))
            if epoch is None or not 0 <= now - epoch < SLOTS or not value:
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
