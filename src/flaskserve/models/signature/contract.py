"""The signature itself: what one served model version accepts and offers.

The fields are the whole contract; turning a request into a model input
against them is :mod:`.validation`'s work, which the ``matrix_from_*`` methods
hand each request to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from flaskserve.models.signature.validation import (
    columns_matrix,
    object_array,
    records_matrix,
    rows_matrix,
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
    #: The feature names as a set, what a request's keys are checked against.
    feature_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature_set", frozenset(self.feature_names))

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
            "classes": None if self.classes is None else [plain(c) for c in self.classes],
        }

    def probe_input(self) -> npt.NDArray[Any]:
        """One harmless row to warm the model up with: zeros for a table, an empty string for text."""
        if self.is_text:
            return object_array([""])
        return np.zeros((1, self.n_features), dtype=self.dtype)

    # -- building the input matrix -------------------------------------------------

    def matrix_from_records(self, records: Sequence[Mapping[str, Any]]) -> npt.NDArray[Any]:
        """Rows given by feature name (``{"x": 1, "y": 2}``), in any key order."""
        return records_matrix(self, records)

    def matrix_from_rows(self, rows: Any) -> npt.NDArray[Any]:
        """Positional rows (``[[1, 2], [3, 4]]``) in signature order, or an array already decoded.

        A text model also takes bare strings as rows (``["hi", "bye"]``).
        """
        return rows_matrix(self, rows)

    def matrix_from_columns(self, columns: Mapping[str, Any]) -> npt.NDArray[Any]:
        """Columns by feature name (``{"x": [1, 3], "y": [2, 4]}``), as columnar protocols send them."""
        return columns_matrix(self, columns)


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value JSON can carry."""
    return value.item() if isinstance(value, np.generic) else value
