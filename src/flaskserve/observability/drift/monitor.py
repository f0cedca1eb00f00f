"""The served side of drift: count each prediction into the window, and report drift from it.

:meth:`DriftMonitor.observe` runs on every prediction of a model version that
has a reference profile: one ``searchsorted`` and one ``bincount`` per feature
and per profiled output, then one counter write per non-empty bin. A model
version without ``reference.json`` costs one dictionary lookup.

The report (``/models/{name}/monitoring``) and the gauges (``/metrics``, through
:meth:`DriftMonitor.collector`) are computed when asked, from the window summed
over every worker, so they are the same whichever worker answers.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

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

__all__ = ["INPUT", "DriftMonitor", "FeatureDrift", "output_role"]

log = logging.getLogger("flaskserve.drift")

#: The role label of input features; outputs are ``output:METHOD``.
INPUT = "input"
#: Up to this many rows, values are binned one by one in Python: NumPy's per-call cost is
#: larger than the work for a few rows (measured on the one-row path, docs/monitoring.md).
_ROW_BY_ROW = 8


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
    """Drift of every served model version that has a reference profile, in one app."""

    def __init__(self, registry: ModelRegistry, window: DriftWindow) -> None:
        self._registry = registry
        self.window = window
        # By (name, version, sha256): a reloaded file is profiled again; None when it has no profile.
        self._references: dict[tuple[str, str, str], ReferenceProfile | None] = {}

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
        """Count one prediction's rows and outputs into the window."""
        reference = self.reference(model)
        if reference is None:
            return
        rows = int(matrix.shape[0])
        matrix = reference.columns(matrix)
        cells: Counter[tuple[str, str, str]] = Counter()
        if rows <= _ROW_BY_ROW:
            for row in matrix.tolist():
                for feature, value in zip(reference.features, row, strict=True):
                    _count_one(cells, INPUT, feature, value)
        else:
            for index, feature in enumerate(reference.features):
                _count_many(cells, INPUT, feature, matrix[:, index])
        for method, output in reference.outputs.items():
            values = results.get(method)
            if values is None or np.ndim(values) != 1:
                continue
            role = output_role(method)
            if rows <= _ROW_BY_ROW:
                for value in values.tolist():
                    _count_one(cells, role, output, value)
            else:
                _count_many(cells, role, output, np.asarray(values))
        self.window.add(model.name, model.version, rows, cells.items())

    def report(self, name: str) -> list[dict[str, Any]]:
        """The drift of each served version of model ``name``: the JSON of ``/models/{name}/monitoring``."""
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


def _count_one(cells: Counter[tuple[str, str, str]], role: str, feature: FeatureProfile, value: Any) -> None:
    position, outside = feature.bin_of(value)
    cells[(role, feature.name, str(position))] += 1
    if outside:
        cells[(role, feature.name, OUTSIDE)] += 1


def _count_many(
    cells: Counter[tuple[str, str, str]], role: str, feature: FeatureProfile, values: npt.NDArray[Any]
) -> None:
    counts, outside = feature.count(values)
    for position in np.flatnonzero(counts).tolist():
        cells[(role, feature.name, str(position))] += int(counts[position])
    if outside:
        cells[(role, feature.name, OUTSIDE)] += outside


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
