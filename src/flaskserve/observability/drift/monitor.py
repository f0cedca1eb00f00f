"""The served side of drift: hold each prediction, count held rows in bulk, report drift from the window.

A request pays for a hand-over only. :meth:`DriftMonitor.observe` looks up the
model version's reference profile (one dictionary lookup; a version without
``reference.json`` stops there) and appends the request's matrix and answers to
this worker's list of held predictions. The counting — a text model's texts
measured, one ``searchsorted`` per feature and per profiled output over every
held row at once, the counter writes to the window's shared files — is done by
:meth:`DriftMonitor.flush`, in bulk:

* by a thread of this worker, every :data:`FLUSH_INTERVAL_S` seconds, and at once
  when :data:`FLUSH_ROWS` rows are held;
* before this worker answers ``/metrics`` or ``/models/{name}/monitoring``, so
  what it reports includes every row it served itself;
* when the worker exits normally (a graceful stop).

Rows another worker holds reach the shared window within one flush interval,
which bounds how stale a report answered by any worker can be. At most
:data:`MAX_HELD_ROWS` rows are held: past that (the flush thread cannot keep
up), a prediction's rows are dropped and counted
(``flaskserve_drift_rows_dropped_total``), never waited for.

The report (``/models/{name}/monitoring``) and the gauges (``/metrics``, through
:meth:`DriftMonitor.collector`) are computed when asked, from the window summed
over every worker, so they are the same whichever worker answers.
"""

from __future__ import annotations

import atexit
import logging
import math
import multiprocessing.util
import os
import threading
import weakref
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from flaskserve.errors import ConfigError
from flaskserve.models.registry import ModelRegistry
from flaskserve.models.served import ServedModel
from flaskserve.observability.drift.profile import FeatureProfile, ReferenceProfile
from flaskserve.observability.drift.statistics import band, jensen_shannon, kolmogorov_smirnov, psi
from flaskserve.observability.drift.window import OUTSIDE, DriftWindow, WindowCounts

__all__ = [
    "FLUSH_INTERVAL_S",
    "FLUSH_ROWS",
    "INPUT",
    "MAX_HELD_ROWS",
    "DriftMonitor",
    "FeatureDrift",
    "output_role",
]

log = logging.getLogger("flaskserve.drift")

#: The role label of input features; outputs are ``output:METHOD``.
INPUT = "input"
#: Longest a served row waits in its worker before it is counted into the shared window: the
#: staleness of a report answered by another worker.
FLUSH_INTERVAL_S = 0.5
#: Held rows at which the flush thread is woken before its interval is up.
FLUSH_ROWS = 2_000
#: Held rows past which a prediction's rows are dropped (and counted) rather than held.
MAX_HELD_ROWS = 200_000

#: One held prediction: its model version's profile, matrix and answers.
_Held = tuple[ServedModel, ReferenceProfile, npt.NDArray[Any], Mapping[str, Any]]
_Cells = Counter[tuple[str, str, str]]


def output_role(method: str) -> str:
    return f"output:{method}"


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's (or output's) drift over the window."""

    role: str
    feature: str
    rows: int
    psi: float
    ks: float | None
    js: float
    out_of_range: float
    missing: float

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "feature": self.feature,
            "rows": self.rows,
            "psi": _finite(self.psi),
            "band": band(self.psi) if self.rows else None,
            "ks": _finite(self.ks),
            "js": _finite(self.js),
            "out_of_range": _finite(self.out_of_range),
            "missing": _finite(self.missing),
        }


class DriftMonitor:
    """Drift of every served model version that has a reference profile, in one app.

    ``counted(n)`` and ``dropped(n)`` are told how many rows were counted into the
    window, and dropped because too many were held.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        window: DriftWindow,
        *,
        counted: Callable[[int], object] | None = None,
        dropped: Callable[[int], object] | None = None,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        flush_rows: int = FLUSH_ROWS,
        max_held_rows: int = MAX_HELD_ROWS,
    ) -> None:
        self._registry = registry
        self.window = window
        self._counted = counted
        self._dropped = dropped
        self._flush_interval_s = flush_interval_s
        self._flush_rows = flush_rows
        self._max_held_rows = max_held_rows
        # By (name, version, sha256): a reloaded file is profiled again; None when it has no profile.
        self._references: dict[tuple[str, str, str], ReferenceProfile | None] = {}
        self._held: list[_Held] = []
        self._held_rows = 0
        # Guards the held list (requests append, a flush takes it); a flush holds _flushing from
        # taking the list to its last window write, so that held rows reach the window in order.
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        # The process whose flush thread runs: a thread does not survive a fork.
        self._pid: int | None = None

    def reference(self, model: ServedModel) -> ReferenceProfile | None:
        key = (model.name, model.version, model.sha256)
        try:
            return self._references[key]
        except KeyError:
            pass
        found: ReferenceProfile | None = None
        try:
            found = ReferenceProfile.read_beside(model.source)
        except (ConfigError, OSError) as exc:
            log.warning("drift is not monitored", extra={"model": model.name, "reason": str(exc)})
        if found is not None and not _fits(found, model):
            log.warning(
                "drift is not monitored: the reference profile names other features than the model",
                extra={"model": model.name, "version": model.version},
            )
            found = None
        self._references[key] = found
        return found

    def observe(self, model: ServedModel, matrix: npt.NDArray[Any], results: Mapping[str, Any]) -> None:
        """Hold one prediction's rows and answers for the next flush; the only drift work of a request."""
        reference = self._references.get((model.name, model.version, model.sha256), _UNREAD)
        if reference is _UNREAD:
            reference = self.reference(model)
        if reference is None:
            return
        if self._pid != os.getpid():
            self._start()
        rows = len(matrix)
        with self._lock:
            # One request larger than the limit is held alone rather than never counted.
            if self._held and self._held_rows + rows > self._max_held_rows:
                held = False
            else:
                self._held.append((model, cast(ReferenceProfile, reference), matrix, results))
                self._held_rows += rows
                held = True
            full = self._held_rows >= self._flush_rows
        if not held and self._dropped is not None:
            self._dropped(rows)
        if full:
            self._wake.set()

    def flush(self) -> None:
        """Count every row this worker holds into the window, in bulk (``observe`` goes on meanwhile)."""
        with self._flushing:
            with self._lock:
                held, self._held, self._held_rows = self._held, [], 0
            if self._pid != os.getpid():
                return  # held before a fork: the parent's rows, which the parent counts
            by_version: dict[tuple[str, str, int], list[_Held]] = defaultdict(list)
            for entry in held:
                model, reference = entry[0], entry[1]
                by_version[(model.name, model.version, id(reference))].append(entry)
            for (name, version, _), entries in by_version.items():
                rows = self._count(name, version, entries)
                if self._counted is not None:
                    self._counted(rows)

    def _count(self, name: str, version: str, entries: Sequence[_Held]) -> int:
        """Count the held predictions of one model version: each row into the slot its position takes."""
        reference = entries[0][1]
        matrices = [entry[2] for entry in entries]
        inputs = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
        rows = len(inputs)
        slots = self.window.slots.take(name, version, rows)
        first = int(slots[0])
        span = int(slots[-1]) - first + 1
        local = slots - first
        cells: list[_Cells] = [Counter() for _ in range(span)]
        columns = reference.columns(inputs)
        for index, feature in enumerate(reference.features):
            _tally(cells, INPUT, feature, columns[:, index], local)
        for method, output in reference.outputs.items():
            values, where = _answers(entries, method)
            if values is not None:
                _tally(cells, output_role(method), output, values, local[where])
        rows_in = np.bincount(local, minlength=span)
        for offset in range(span):
            if rows_in[offset]:
                self.window.add(name, version, first + offset, int(rows_in[offset]), cells[offset].items())
        return rows

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            # The parent's held rows are the parent's to count; this process starts empty.
            self._held, self._held_rows = [], 0
            self._wake = threading.Event()
            self._pid = os.getpid()
        threading.Thread(
            target=_flush_every,
            args=(weakref.ref(self), self._wake, self._flush_interval_s),
            name="flaskserve-drift",
            daemon=True,
        ).start()
        _flush_at_exit(self)

    def report(self, name: str) -> list[dict[str, Any]]:
        """The drift of each served version of model ``name``: the JSON of ``/models/{name}/monitoring``."""
        self.flush()
        windows = self.window.read()
        versions = []
        for entry in self._registry.entries(name):
            if entry.model is None:
                continue
            reference = self.reference(entry.model)
            window = windows.get((entry.name, entry.version), WindowCounts())
            drifts = [d.to_json() for d in _drifts(reference, window)] if reference is not None else []
            versions.append(
                {
                    "version": entry.version,
                    "profiled": reference is not None,
                    "window_rows": window.rows,
                    "features": drifts,
                }
            )
        return versions

    def collector(self) -> Collector:
        return _DriftCollector(self)

    def _gauges(self) -> Iterator[Metric]:
        self.flush()
        windows = self.window.read()
        labels = ["model", "version", "role", "feature"]
        families = {
            "psi": GaugeMetricFamily(
                "flaskserve_feature_drift_psi",
                "Population stability index of the window against the training profile "
                "(under 0.1 stable, under 0.25 moderate, else major).",
                labels=labels,
            ),
            "ks": GaugeMetricFamily(
                "flaskserve_feature_drift_ks",
                "Kolmogorov-Smirnov statistic of the window's binned values against the training profile.",
                labels=labels,
            ),
            "js": GaugeMetricFamily(
                "flaskserve_feature_drift_js",
                "Jensen-Shannon distance (base 2) of the window against the training profile.",
                labels=labels,
            ),
            "out_of_range": GaugeMetricFamily(
                "flaskserve_feature_out_of_range_ratio",
                "Share of the window's values outside the training range (or unseen categories).",
                labels=labels,
            ),
            "missing": GaugeMetricFamily(
                "flaskserve_feature_missing_ratio", "Share of the window's values missing.", labels=labels
            ),
        }
        rows = GaugeMetricFamily(
            "flaskserve_drift_window_rows",
            "Rows in the drift window, over all workers.",
            labels=["model", "version"],
        )
        for model in self._registry.models():
            reference = self.reference(model)
            if reference is None:
                continue
            window = windows.get((model.name, model.version), WindowCounts())
            rows.add_metric([model.name, model.version], window.rows)
            if not window.rows:
                continue
            for drift in _drifts(reference, window):
                values = [model.name, model.version, drift.role, drift.feature]
                for key, family in families.items():
                    value = getattr(drift, key)
                    if value is not None:
                        family.add_metric(values, value)
        yield rows
        yield from families.values()


class _DriftCollector(Collector):
    def __init__(self, monitor: DriftMonitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterator[Metric]:
        return self._monitor._gauges()


#: Marks a model version whose profile has not been looked for yet.
_UNREAD = object()


def _tally(
    cells: list[_Cells],
    role: str,
    feature: FeatureProfile,
    values: npt.NDArray[Any],
    slots: npt.NDArray[np.int64],
) -> None:
    """Count ``values`` into ``cells[slot]`` by bin: one ``searchsorted`` and one ``bincount`` in all."""
    positions, outside = feature.bins_of(values)
    span = len(cells)
    counts = np.bincount(slots * feature.bins + positions, minlength=span * feature.bins)
    for offset, position in zip(*np.divmod(np.flatnonzero(counts), feature.bins), strict=True):
        cells[int(offset)][(role, feature.name, str(position))] += int(
            counts[offset * feature.bins + position]
        )
    if outside.any():
        beyond = np.bincount(slots[outside], minlength=span)
        for offset in np.flatnonzero(beyond).tolist():
            cells[offset][(role, feature.name, OUTSIDE)] += int(beyond[offset])


def _answers(entries: Sequence[_Held], method: str) -> tuple[npt.NDArray[Any] | None, npt.NDArray[np.int64]]:
    """The answers of ``method`` over the held predictions that have one per row, and their row numbers."""
    parts: list[npt.NDArray[Any]] = []
    where: list[npt.NDArray[np.int64]] = []
    start = 0
    for _, _, matrix, results in entries:
        rows = len(matrix)
        values = results.get(method)
        if values is not None and np.ndim(values) == 1 and len(values) == rows:
            parts.append(np.asarray(values))
            where.append(np.arange(start, start + rows, dtype=np.int64))
        start += rows
    if not parts:
        return None, np.empty(0, dtype=np.int64)
    if len(parts) == 1:
        return parts[0], where[0]
    return np.concatenate(parts), np.concatenate(where)


def _flush_every(monitor: weakref.ref[DriftMonitor], wake: threading.Event, interval_s: float) -> None:
    """The flush thread: flush at each interval or wake-up, until the monitor is gone."""
    while True:
        wake.wait(interval_s)
        wake.clear()
        found = monitor()
        if found is None:
            return
        try:
            found.flush()
        except Exception:
            log.exception("counting served rows into the drift window failed")
        del found


_exiting: weakref.WeakSet[DriftMonitor] = weakref.WeakSet()
_exit_hooks: list[int] = []


def _flush_at_exit(monitor: DriftMonitor) -> None:
    """Have this process count what ``monitor`` holds when it exits normally."""
    _exiting.add(monitor)
    if os.getpid() in _exit_hooks:
        return
    _exit_hooks.append(os.getpid())
    atexit.register(_flush_all)
    # A multiprocessing child (a granian worker) leaves through os._exit after these finalizers.
    multiprocessing.util.Finalize(None, _flush_all, exitpriority=10)


def _flush_all() -> None:
    for monitor in list(_exiting):
        try:
            monitor.flush()
        except Exception:
            log.exception("counting served rows into the drift window at exit failed")


def _drifts(reference: ReferenceProfile, window: WindowCounts) -> Iterator[FeatureDrift]:
    profiled: list[tuple[str, FeatureProfile]] = [(INPUT, f) for f in reference.features]
    profiled.extend((output_role(method), o) for method, o in reference.outputs.items())
    for role, feature in profiled:
        counts = window.counts(role, feature.name, feature.bins)
        total = float(counts.sum())
        if not total:
            continue
        yield FeatureDrift(
            role=role,
            feature=feature.name,
            rows=int(total),
            psi=psi(feature.proportions, counts),
            ks=kolmogorov_smirnov(feature.proportions, counts) if feature.kind == "numeric" else None,
            js=jensen_shannon(feature.proportions, counts),
            out_of_range=window.outside.get((role, feature.name), 0.0) / total,
            missing=float(counts[0]) / total,
        )


def _fits(reference: ReferenceProfile, model: ServedModel) -> bool:
    if reference.text is not None:
        return model.signature.is_text and (reference.text.feature,) == model.signature.feature_names
    names = tuple(f.name for f in reference.features)
    return not model.signature.is_text and names == model.signature.feature_names


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 6)
