"""What a served model accepts and offers, inferred from the estimator.

The signature is the contract every protocol validates against: the ordered
feature names, the input dtype, the methods the model offers and, for
classifiers, its classes. Every request is turned into one model input in
signature order *here*, so the protocols agree on validation and on answers.

A signature is one of two kinds:

- ``table``: rows of numbers, one column per feature. The input is a 2-D
  float64 matrix, the shape every scikit-learn estimator fit on a table takes.
- ``text``: one string per row, under one feature name (``text`` unless the
  settings name it). The input is a 1-D object array of ``str``, the shape a
  text vectorizer (and so a Pipeline that starts with one) takes. Numbers and
  nulls are refused rather than turned into text, and each string's UTF-8
  size is bounded, because a vectorizer's cost grows with the text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from flaskserve.errors import (
    InvalidValue,
    LimitExceeded,
    MissingFeature,
    ModelLoadError,
    ShapeMismatch,
    UnknownFeature,
    WrongFeatureCount,
    clip,
)

#: Methods a model may offer, in the order they are listed to clients.
KNOWN_METHODS: tuple[str, ...] = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "transform",
)

#: The two kinds of input a model takes: a numeric table, or one string per row.
InputKind = Literal["table", "text"]
TABLE: InputKind = "table"
TEXT: InputKind = "text"
#: The feature name of a text model whose settings name none.
TEXT_FEATURE = "text"
#: Longest text element accepted when no request limit is given (the default ``limits.max_string_bytes``).
DEFAULT_MAX_TEXT_BYTES = 1024 * 1024

_NUMERIC_TYPES = (int, float)
_NAME_LIMIT = 8  # how many expected feature names an error message lists
_OBJECT = np.dtype(object)


@dataclass(frozen=True)
class Signature:
    """The input and output contract of one served model version."""

    feature_names: tuple[str, ...]
    methods: tuple[str, ...]
    classes: tuple[Any, ...] | None = None
    dtype: np.dtype[Any] = field(default_factory=lambda: np.dtype(np.float64))
    #: True when the names came from the model (fit on a DataFrame) or from settings,
    #: False when they were made up as x0..xN for a model fit on a bare array.
    names_given: bool = True
    #: Let JSON ``null`` through as NaN, for estimators that handle missing values.
    allow_missing: bool = False
    #: ``table`` (a 2-D numeric matrix) or ``text`` (a 1-D array of strings).
    kind: InputKind = TABLE
    #: Longest text element in UTF-8 bytes, for text signatures.
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES
    _positions: Mapping[str, int] = field(init=False, repr=False, compare=False)
    _name_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_positions", {n: i for i, n in enumerate(self.feature_names)})
        object.__setattr__(self, "_name_set", frozenset(self.feature_names))

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def is_text(self) -> bool:
        return self.kind == TEXT

    @property
    def is_classifier(self) -> bool:
        return self.classes is not None

    @property
    def class_labels(self) -> tuple[str, ...]:
        """Class labels as strings, the keys of probability maps in JSON answers."""
        return tuple(str(c) for c in self.classes or ())

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary for model listings and ``flaskserve check``."""
        return {
            "input": self.kind,
            "features": list(self.feature_names),
            "n_features": self.n_features,
            "dtype": "str" if self.is_text else self.dtype.name,
            "methods": list(self.methods),
            "classes": None if self.classes is None else [_plain(c) for c in self.classes],
        }

    def probe_input(self) -> npt.NDArray[Any]:
        """One harmless row to warm the model up with: zeros for a table, an empty string for text."""
        if self.is_text:
            return _object_array([""])
        return np.zeros((1, self.n_features), dtype=self.dtype)

    # -- building the input matrix -------------------------------------------------

    def matrix_from_records(self, records: Sequence[Mapping[str, Any]]) -> npt.NDArray[Any]:
        """Rows given by feature name (``{"x": 1, "y": 2}``), in any key order."""
        names = self.feature_names
        expected = self._name_set
        rows: list[list[Any]] = []
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise ShapeMismatch(
                    f"row {index} must be an object keyed by feature name "
                    f"({self._expected_names()}); got {_json_type(record)}"
                )
            if record.keys() != expected:
                self._raise_key_mismatch(record, index, len(records))
            rows.append([record[name] for name in names])
        if self.is_text:
            return self._texts([row[0] for row in rows])
        return self._to_matrix(rows, len(records))

    def matrix_from_rows(self, rows: Any) -> npt.NDArray[Any]:
        """Positional rows (``[[1, 2], [3, 4]]``) in signature order, or an array already decoded.

        A text model also takes bare strings as rows (``["hi", "bye"]``).
        """
        if self.is_text:
            return self._text_rows(rows)
        if isinstance(rows, np.ndarray):
            return self._check_array(rows)
        if not isinstance(rows, list):
            raise ShapeMismatch(f"rows must be a list of lists; got {_json_type(rows)}")
        for index, row in enumerate(rows):
            if not isinstance(row, list):
                raise ShapeMismatch(
                    f"row {index} must be a list of {self.n_features} values; got {_json_type(row)}"
                )
            if len(row) != self.n_features:
                raise WrongFeatureCount(
                    f"row {index} has {len(row)} values; the model expects {self.n_features} "
                    f"({self._expected_names()})"
                )
        return self._to_matrix(rows, len(rows))

    def matrix_from_columns(self, columns: Mapping[str, Any]) -> npt.NDArray[Any]:
        """Columns by feature name (``{"x": [1, 3], "y": [2, 4]}``), as columnar protocols send them."""
        if columns.keys() != self._name_set:
            self._raise_key_mismatch(columns, None, 1)
        lengths = {name: _length(columns[name]) for name in self.feature_names}
        n_rows = next(iter(lengths.values()), 0)
        for name, length in lengths.items():
            if length != n_rows:
                raise ShapeMismatch(
                    f"column '{name}' has {length} values but column "
                    f"'{self.feature_names[0]}' has {n_rows}; all columns need the same length"
                )
        if self.is_text:
            return self._text_rows(columns[self.feature_names[0]])
        if all(isinstance(columns[name], np.ndarray) for name in self.feature_names):
            return self._check_array(np.column_stack([columns[name] for name in self.feature_names]))
        rows = [list(values) for values in zip(*(columns[name] for name in self.feature_names), strict=False)]
        return self._to_matrix(rows, n_rows)

    # -- text ------------------------------------------------------------------------

    def _text_rows(self, rows: Any) -> npt.NDArray[Any]:
        """Texts given as bare strings, rows of one string, or a decoded array of ``[N]`` or ``[N, 1]``."""
        if isinstance(rows, np.ndarray):
            return self._text_array(rows)
        if not isinstance(rows, list):
            raise ShapeMismatch(f"rows must be a list of texts; got {_json_type(rows)}")
        values: list[Any] = []
        for index, row in enumerate(rows):
            if isinstance(row, list):
                if len(row) != 1:
                    raise WrongFeatureCount(
                        f"row {index} has {len(row)} values; the model takes one text "
                        f"('{self.feature_names[0]}') per row"
                    )
                row = row[0]
            values.append(row)
        return self._texts(values)

    def _text_array(self, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        if array.ndim == 2 and array.shape[1] == 1:
            array = array.reshape(-1)
        if array.ndim != 1:
            raise ShapeMismatch(
                f"the model takes one text per row, so the input's shape must be [rows] or [rows, 1]; "
                f"got {list(array.shape)}"
            )
        if array.dtype.kind not in "OUS":
            raise InvalidValue(
                f"feature '{self.feature_names[0]}' must be text (strings or BYTES); "
                f"got values of type {array.dtype.name}"
            )
        return self._texts(array.tolist())

    def _texts(self, values: list[Any]) -> npt.NDArray[Any]:
        """Strings as the 1-D object array a text model takes; bytes must be UTF-8, nothing else passes."""
        if not values:
            raise ShapeMismatch("the request has no rows; send at least one")
        name = self.feature_names[0]
        limit = self.max_text_bytes
        for index, value in enumerate(values):
            if type(value) is not str:
                if isinstance(value, bytes):
                    value = _utf8(value, name, index)
                elif isinstance(value, str):
                    value = str(value)  # a subclass (numpy.str_) as the plain str models expect
                else:
                    raise InvalidValue(
                        f"feature '{name}' in row {index} must be a string; "
                        f"got {_json_type(value)} {_shown(value)}".rstrip()
                    )
                values[index] = value
            # UTF-8 takes one to four bytes a character: encode only when the length cannot tell.
            if len(value) * 4 > limit:
                size = len(value.encode("utf-8", "surrogatepass"))
                if size > limit:
                    raise LimitExceeded(
                        f"feature '{name}' in row {index} is {size} bytes of UTF-8 text; "
                        f"at most {limit} are accepted"
                    )
        return _object_array(values)

    # -- validation ------------------------------------------------------------------

    def _to_matrix(self, rows: list[list[Any]], n_rows: int) -> npt.NDArray[Any]:
        if n_rows == 0:
            raise ShapeMismatch("the request has no rows; send at least one")
        kinds = {type(value) for row in rows for value in row}
        if not kinds.issubset(_NUMERIC_TYPES):
            self._raise_bad_value(rows)
        matrix = np.array(rows, dtype=self.dtype)
        return self._check_finite(matrix)

    def _check_array(self, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        if array.ndim == 1 and self.n_features == 1:
            array = array.reshape(-1, 1)
        if array.ndim != 2:
            raise ShapeMismatch(
                f"the input must be a 2-D table of rows by {self.n_features} features; "
                f"got {array.ndim} dimension(s) of shape {list(array.shape)}"
            )
        if array.shape[1] != self.n_features:
            raise WrongFeatureCount(
                f"the model expects {self.n_features} features ({self._expected_names()}); "
                f"got {array.shape[1]}"
            )
        if array.shape[0] == 0:
            raise ShapeMismatch("the request has no rows; send at least one")
        if array.dtype.kind not in "biuf":
            raise InvalidValue(f"the input must be numeric; got values of type {array.dtype.name}")
        return self._check_finite(array.astype(self.dtype, copy=False))

    def _check_finite(self, matrix: npt.NDArray[Any]) -> npt.NDArray[Any]:
        if matrix.dtype.kind == "f" and not np.isfinite(matrix).all():
            bad = np.argwhere(~np.isfinite(matrix))
            if self.allow_missing and not np.isinf(matrix).any():
                return matrix
            row, col = (int(i) for i in bad[0])
            raise InvalidValue(
                f"feature '{self.feature_names[col]}' in row {row} is {matrix[row, col]}; "
                "values must be finite numbers"
            )
        return matrix

    def _raise_bad_value(self, rows: list[list[Any]]) -> None:
        for row_index, row in enumerate(rows):
            for col, value in enumerate(row):
                if type(value) in _NUMERIC_TYPES:
                    continue
                if value is None and self.allow_missing:
                    row[col] = float("nan")
                    continue
                raise InvalidValue(
                    f"feature '{self.feature_names[col]}' in row {row_index} must be a number; "
                    f"got {_json_type(value)} {_preview(value)}"
                )

    def _raise_key_mismatch(self, record: Mapping[str, Any], index: int | None, n_rows: int) -> None:
        where = f" in row {index}" if index is not None and n_rows > 1 else ""
        missing = [name for name in self.feature_names if name not in record]
        if missing:
            raise MissingFeature(
                f"missing feature{'s' if len(missing) > 1 else ''} "
                f"{', '.join(repr(m) for m in missing[:_NAME_LIMIT])}{where}; "
                f"the model expects {self._expected_names()}"
            )
        unknown = [str(key) for key in record if key not in self._name_set]
        raise UnknownFeature(
            f"unknown feature{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(clip(u)) for u in unknown[:_NAME_LIMIT])}{where}; "
            f"the model expects {self._expected_names()}"
        )

    def _expected_names(self) -> str:
        shown = ", ".join(self.feature_names[:_NAME_LIMIT])
        more = self.n_features - _NAME_LIMIT
        return f"{shown}, … {more} more" if more > 0 else shown


def infer_signature(
    estimator: Any,
    *,
    feature_names: Sequence[str] | None = None,
    allow_missing: bool = False,
    input_kind: InputKind | None = None,
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
) -> Signature:
    """Read the signature off a fitted scikit-learn-like estimator.

    Names come from ``feature_names_in_`` (fit on a DataFrame), else from settings,
    else are made up as ``x0..xN`` from ``n_features_in_``. A Pipeline exposes both
    attributes of its first step, so Pipelines work unchanged.

    A model takes text when ``input_kind`` (the model's ``input`` setting) says so,
    or, when it says nothing, when :func:`takes_text` recognises a text vectorizer
    at its front: such a model has no ``n_features_in_`` to read.
    """
    methods = tuple(m for m in KNOWN_METHODS if callable(getattr(estimator, m, None)))
    if not methods:
        raise ModelLoadError(
            f"the object is a {type(estimator).__name__}, which has none of the methods "
            f"{', '.join(KNOWN_METHODS)}; it cannot be served"
        )
    classes = getattr(estimator, "classes_", None)
    plain_classes = None if classes is None else tuple(_plain(c) for c in classes)
    kind = input_kind if input_kind is not None else (TEXT if takes_text(estimator) else TABLE)
    if kind == TEXT:
        return _text_signature(methods, plain_classes, feature_names, allow_missing, max_text_bytes)
    names_given = True
    fitted_names = getattr(estimator, "feature_names_in_", None)
    n_features = getattr(estimator, "n_features_in_", None)
    if feature_names is not None:
        names = tuple(str(n) for n in feature_names)
        if n_features is not None and len(names) != int(n_features):
            raise ModelLoadError(
                f"the settings name {len(names)} features but the model was fit on {int(n_features)}"
            )
    elif fitted_names is not None:
        names = tuple(str(n) for n in fitted_names)
    elif n_features is not None:
        names = tuple(f"x{i}" for i in range(int(n_features)))
        names_given = False
    else:
        raise ModelLoadError(
            "cannot tell how many features the model takes (it has no n_features_in_); "
            "name them with 'features = [...]' in the model's settings"
        )
    if len(set(names)) != len(names):
        raise ModelLoadError("feature names must be unique")
    return Signature(
        feature_names=names,
        methods=methods,
        classes=plain_classes,
        names_given=names_given,
        allow_missing=allow_missing,
    )


def _text_signature(
    methods: tuple[str, ...],
    classes: tuple[Any, ...] | None,
    feature_names: Sequence[str] | None,
    allow_missing: bool,
    max_text_bytes: int,
) -> Signature:
    names = (TEXT_FEATURE,) if feature_names is None else tuple(str(n) for n in feature_names)
    if len(names) != 1:
        raise ModelLoadError(
            f"a text model takes one feature, its text; the settings name {len(names)} "
            f'({", ".join(names[:_NAME_LIMIT])}): name one, e.g. features = ["utterance"]'
        )
    if allow_missing:
        raise ModelLoadError("allow_missing applies to numeric features; a text model refuses null texts")
    return Signature(
        feature_names=names,
        methods=methods,
        classes=classes,
        dtype=_OBJECT,
        kind=TEXT,
        max_text_bytes=max_text_bytes,
    )


def takes_text(estimator: Any) -> bool:
    """Whether the estimator reads raw text: it is, or starts with, a scikit-learn text vectorizer.

    ``CountVectorizer`` (and so ``TfidfVectorizer``) and ``HashingVectorizer``
    count, at the front of a Pipeline, or as every part of a ``FeatureUnion``
    there (word and character n-grams side by side). Anything else is read as a
    table; a custom text model says ``input = "text"`` in its settings.
    """
    try:
        from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer
        from sklearn.pipeline import FeatureUnion, Pipeline
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return False
    if isinstance(estimator, (CountVectorizer, HashingVectorizer)):
        return True
    if isinstance(estimator, Pipeline):
        return bool(estimator.steps) and takes_text(estimator.steps[0][1])
    if isinstance(estimator, FeatureUnion):
        parts = [part for _, part in estimator.transformer_list if part != "drop"]
        return bool(parts) and all(takes_text(part) for part in parts)
    return False


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value JSON can carry."""
    return value.item() if isinstance(value, np.generic) else value


def _object_array(values: list[Any]) -> npt.NDArray[Any]:
    """A 1-D object array holding exactly these values (``np.array`` would make fixed-width ``<U``)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _utf8(value: bytes, name: str, index: int) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidValue(f"feature '{name}' in row {index} is not valid UTF-8 text") from None


def _length(values: Any) -> int:
    if isinstance(values, np.ndarray):
        return int(values.shape[0]) if values.ndim else 1
    if isinstance(values, list):
        return len(values)
    raise ShapeMismatch(f"a column must be a list of values; got {_json_type(values)}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


def _shown(value: Any) -> str:
    """A short JSON rendering of a scalar for an error message; empty for anything larger."""
    if value is None:
        return ""  # "null" is already the type
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return clip(repr(value))
    return _preview(value)


def _preview(value: Any) -> str:
    if isinstance(value, (str, bool)) or value is None:
        import json

        return clip(json.dumps(value))
    return ""
