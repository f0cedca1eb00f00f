"""The reference profile of one model version, and counting values into its bins.

A profile describes the training data in a few hundred numbers, so that served
rows can be compared with it without keeping either:

* a **numeric** feature has up to ten bins whose inner edges are the training
  quantiles, a "missing" bin for NaN, and the training minimum and maximum
  (values outside them are counted as out of range);
* a **categorical** feature (or a classifier's predicted class) has the training
  categories, up to :data:`MAX_CATEGORIES`, plus "other" and "missing".

Bins are counted by :meth:`FeatureProfile.count` both when the profile is made
and when rows are served, so identical data gives identical proportions and a
PSI of exactly zero. A text model's input is measured (length, vocabulary hits:
:mod:`.text`) and each measure profiled as a numeric feature. The profile is
JSON (``reference.json`` beside the model file), small enough to read and diff.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import orjson

from flaskserve.errors import ConfigError

if TYPE_CHECKING:
    from flaskserve.observability.drift.text import TextProfile

__all__ = [
    "MAX_CATEGORIES",
    "REFERENCE_FILE",
    "FeatureProfile",
    "ReferenceProfile",
    "profile_column",
]

#: The file name of a model version's profile, beside its model file.
REFERENCE_FILE = "reference.json"
#: Quantile bins per numeric feature (fewer when the training values repeat).
NUMERIC_BINS = 10
#: Categories kept per categorical feature; rarer ones share the "other" bin.
MAX_CATEGORIES = 50
_FORMAT = 1

Kind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class FeatureProfile:
    """One feature's (or output's) reference: its bins and the training share in each.

    Bins are laid out as ``[missing, *values]``: for a numeric feature, ``values``
    are the ``len(edges) + 1`` intervals the inner ``edges`` cut the line into; for a
    categorical one, each category in ``categories`` and then "other".
    """

    name: str
    kind: Kind
    proportions: tuple[float, ...]
    edges: tuple[float, ...] = ()
    low: float = float("nan")
    high: float = float("nan")
    categories: tuple[str, ...] = ()
    # Looked up on every served value: built once.
    _edges: npt.NDArray[np.float64] = field(init=False, repr=False, compare=False)
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_edges", np.asarray(self.edges, dtype=np.float64))
        object.__setattr__(self, "_index", {c: i + 1 for i, c in enumerate(self.categories)})

    @property
    def bins(self) -> int:
        return len(self.proportions)

    def bin_of(self, value: Any) -> tuple[int, bool]:
        """The bin of one value, and whether it is outside the training range (or an unseen category)."""
        if value is None or (isinstance(value, float) and value != value):
            return 0, False
        if self.kind == "numeric":
            number = float(value)
            # bisect_right: a value equal to an edge goes above it, as searchsorted(side="right").
            return bisect.bisect_right(self.edges, number) + 1, number < self.low or number > self.high
        other = len(self.categories) + 1
        position = self._index.get(str(value), other)
        return position, position == other

    def bins_of(self, values: npt.NDArray[Any]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Each value's bin (one column), and whether it is outside the training range (or unseen).

        One ``searchsorted`` for a numeric column, however many rows: the served rows
        are counted in batches (:mod:`.monitor`), so this is called once per feature
        per batch, not per request.
        """
        if self.kind == "numeric":
            column = np.asarray(values, dtype=np.float64)
            # side="right": a value equal to an edge goes above it, the same at profiling and serving.
            positions = np.searchsorted(self._edges, column, side="right").astype(np.int64) + 1
            missing = np.isnan(column)
            positions[missing] = 0
            # NaN compares false both ways: a missing value is never out of range.
            return positions, (column < self.low) | (column > self.high)
        found = [self.bin_of(value) for value in _values(values)]
        positions = np.fromiter((p for p, _ in found), dtype=np.int64, count=len(found))
        return positions, np.fromiter((o for _, o in found), dtype=np.bool_, count=len(found))

    def count(self, values: npt.NDArray[Any]) -> tuple[npt.NDArray[np.int64], int]:
        """Bin counts of ``values`` (one column), and how many fell outside the training range."""
        positions, outside = self.bins_of(values)
        return np.bincount(positions, minlength=self.bins).astype(np.int64), int(np.count_nonzero(outside))

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"name": self.name, "kind": self.kind, "proportions": self.proportions}
        if self.kind == "numeric":
            document.update(edges=self.edges, min=self.low, max=self.high)
        else:
            document["categories"] = self.categories
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> FeatureProfile:
        kind = document["kind"]
        if kind not in ("numeric", "categorical"):
            raise ValueError(f"unknown feature kind {kind!r}")
        profile = cls(
            name=str(document["name"]),
            kind=kind,
            proportions=tuple(float(p) for p in document["proportions"]),
            edges=tuple(float(e) for e in document.get("edges", ())),
            low=float(document.get("min", float("nan"))),
            high=float(document.get("max", float("nan"))),
            categories=tuple(str(c) for c in document.get("categories", ())),
        )
        expected = len(profile.edges) + 2 if kind == "numeric" else len(profile.categories) + 2
        if profile.bins != expected:
            raise ValueError(f"feature {profile.name!r} has {profile.bins} proportions, not {expected}")
        return profile


def _values(values: npt.NDArray[Any] | Sequence[Any]) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def profile_column(name: str, values: Sequence[Any] | npt.NDArray[Any]) -> FeatureProfile:
    """Profile one training column: numeric if every present value is a number, else categorical."""
    column = np.asarray(values)
    if column.dtype.kind in "biuf":
        numbers = column.astype(np.float64)
        present = numbers[~np.isnan(numbers)]
        if present.size == 0:
            raise ConfigError(f"feature '{name}' has no values to profile")
        quantiles = np.quantile(present, np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1])
        edges = tuple(float(e) for e in np.unique(quantiles))
        draft = FeatureProfile(
            name, "numeric", (0.0,) * (len(edges) + 2), edges, float(present.min()), float(present.max())
        )
        counts, _ = draft.count(numbers)
    else:
        labels = [None if v is None or (isinstance(v, float) and v != v) else str(v) for v in column.tolist()]
        present_labels = [v for v in labels if v is not None]
        unique, frequency = np.unique(np.asarray(present_labels, dtype=object), return_counts=True)
        order = np.argsort(-frequency, kind="stable")[:MAX_CATEGORIES]
        categories = tuple(str(unique[i]) for i in order)
        draft = FeatureProfile(name, "categorical", (0.0,) * (len(categories) + 2), categories=categories)
        counts, _ = draft.count(np.asarray(labels, dtype=object))
    total = max(int(counts.sum()), 1)
    return FeatureProfile(
        name=draft.name,
        kind=draft.kind,
        proportions=tuple(float(c) / total for c in counts),
        edges=draft.edges,
        low=draft.low,
        high=draft.high,
        categories=draft.categories,
    )


@dataclass(frozen=True)
class ReferenceProfile:
    """The reference of one model version: its input features and its outputs, by method.

    For a text model, ``features`` are the measures of its text, and ``text`` says how to take them.
    """

    features: tuple[FeatureProfile, ...]
    outputs: Mapping[str, FeatureProfile]
    rows: int
    text: TextProfile | None = None

    def columns(self, inputs: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """The served inputs as one column per profiled feature: a text model's texts measured."""
        return inputs if self.text is None else self.text.measure(inputs.tolist())

    def to_json(self) -> bytes:
        document = {
            "format": _FORMAT,
            "rows": self.rows,
            "features": [f.to_json() for f in self.features],
            "outputs": {method: o.to_json() for method, o in self.outputs.items()},
        }
        if self.text is not None:
            document["text"] = self.text.to_json()
        return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)

    def write_beside(self, model_file: Path) -> Path:
        target = model_file.parent / REFERENCE_FILE
        target.write_bytes(self.to_json())
        return target

    @classmethod
    def read_beside(cls, model_file: Path) -> ReferenceProfile | None:
        """The profile beside ``model_file``, or ``None`` when it has none; a broken one is an error."""
        path = model_file.parent / REFERENCE_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            document = orjson.loads(raw)
            if document.get("format") != _FORMAT:
                raise ValueError(f"format {document.get('format')!r} is not {_FORMAT}")
            from flaskserve.observability.drift.text import TextProfile

            features = tuple(FeatureProfile.from_json(f) for f in document["features"])
            text = document.get("text")
            return cls(
                features=features,
                outputs={m: FeatureProfile.from_json(o) for m, o in document["outputs"].items()},
                rows=int(document["rows"]),
                text=None if text is None else TextProfile.from_json(text, features),
            )
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
            raise ConfigError(
                f"{REFERENCE_FILE} of '{model_file.name}' is not a reference profile ({exc}); "
                "write it again with flaskserve profile"
            ) from exc
