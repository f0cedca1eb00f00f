"""Requests turned into one model input in signature order, or refused with the fix named.

Every protocol decodes its body, then hands the rows, records or columns to a
:class:`~flaskserve.models.signature.Signature`, which hands them here: so the
protocols agree on validation and on answers.

- A ``table`` input becomes a 2-D float64 matrix. Only numbers pass (JSON
  ``null`` too, as NaN, when the signature allows missing values), and every
  value must be finite.
- A ``text`` input becomes a 1-D object array of ``str``. Numbers and nulls are
  refused rather than turned into text, bytes must be UTF-8, and each string's
  UTF-8 size is bounded, because a vectorizer's cost grows with the text.

Every message names the bad value and where it is, and what the model expects.

A large request is checked in a few passes that run in C (``set(map(type, ...))``,
``map(len, ...)``, :func:`operator.itemgetter`), not a Python loop per row or
per value: a thousand rows cost tens of microseconds, not a millisecond. Only
when a pass finds something wrong does a per-row loop run, to name the first
offender in order, so the messages are those a row-by-row check would give.

Every table is built from one flat, row-major list of its values: numpy turns a
flat list of floats into an array several times faster than a list of rows, and
one type pass over the flat list checks every value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import numpy.typing as npt

from flaskserve.errors import (
    InvalidValue,
    LimitExceeded,
    MissingFeature,
    ShapeMismatch,
    UnknownFeature,
    WrongFeatureCount,
    clip,
)

if TYPE_CHECKING:
    from flaskserve.models.signature.contract import Signature

#: How many expected feature names an error message lists.
NAME_LIMIT = 8
#: The exact classes a table value may have (``bool`` is not among them), and with JSON ``null``.
_NUMERIC_KINDS: frozenset[type] = frozenset((int, float))
_NUMERIC_OR_NULL_KINDS: frozenset[type] = _NUMERIC_KINDS | {type(None)}


def records_matrix(signature: Signature, records: Sequence[Mapping[str, Any]]) -> npt.NDArray[Any]:
    """Rows given by feature name, in any key order."""
    values = _picked_values(signature, records)
    if values is None:
        values = _checked_records(signature, records)
    if signature.is_text:
        return _texts(signature, values)
    return _to_matrix(signature, values, len(records))


def _picked_values(signature: Signature, records: Sequence[Mapping[str, Any]]) -> list[Any] | None:
    """The values row by row in signature order when every record is a dict with exactly the features.

    None otherwise. A dict holding every feature name and no more keys than
    there are features holds exactly the features, so a length pass and a
    picker that raises on a missing name check the keys of every record without
    a loop in Python.
    """
    names = signature.feature_names
    if not records or set(map(type, records)) != {dict} or set(map(len, records)) != {len(names)}:
        return None
    try:
        if len(names) == 1:
            return list(map(itemgetter(names[0]), records))
        return list(chain.from_iterable(map(itemgetter(*names), records)))
    except KeyError:
        return None


def _checked_records(signature: Signature, records: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Row by row, to refuse the first record that is not an object with exactly the features."""
    names = signature.feature_names
    expected = signature.feature_set
    values: list[Any] = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise ShapeMismatch(
                f"row {index} must be an object keyed by feature name "
                f"({expected_names(signature)}); got {_json_type(record)}"
            )
        if record.keys() != expected:
            _raise_key_mismatch(signature, record, index, len(records))
        values.extend(record[name] for name in names)
    return values


def rows_matrix(signature: Signature, rows: Any) -> npt.NDArray[Any]:
    """Positional rows in signature order, or an array already decoded; a text model takes bare strings."""
    if signature.is_text:
        return _text_rows(signature, rows)
    if isinstance(rows, np.ndarray):
        return _check_array(signature, rows)
    if not isinstance(rows, list):
        raise ShapeMismatch(f"rows must be a list of lists; got {_json_type(rows)}")
    n_features = signature.n_features
    if set(map(type, rows)) != {list} or set(map(len, rows)) != {n_features}:
        _check_rows(signature, rows)
    return _to_matrix(signature, list(chain.from_iterable(rows)), len(rows))


def _check_rows(signature: Signature, rows: list[Any]) -> None:
    """Row by row, to refuse the first row that is not a list of the model's width."""
    n_features = signature.n_features
    for index, row in enumerate(rows):
        if not isinstance(row, list):
            raise ShapeMismatch(f"row {index} must be a list of {n_features} values; got {_json_type(row)}")
        if len(row) != n_features:
            raise WrongFeatureCount(
                f"row {index} has {len(row)} values; the model expects {n_features} "
                f"({expected_names(signature)})"
            )


def columns_matrix(signature: Signature, columns: Mapping[str, Any]) -> npt.NDArray[Any]:
    """Columns by feature name, all of one length."""
    names = signature.feature_names
    if columns.keys() != signature.feature_set:
        _raise_key_mismatch(signature, columns, None, 1)
    lengths = {name: _length(columns[name]) for name in names}
    n_rows = next(iter(lengths.values()), 0)
    for name, length in lengths.items():
        if length != n_rows:
            raise ShapeMismatch(
                f"column '{name}' has {length} values but column "
                f"'{names[0]}' has {n_rows}; all columns need the same length"
            )
    if signature.is_text:
        return _text_rows(signature, columns[names[0]])
    if all(isinstance(columns[name], np.ndarray) for name in names):
        return _check_array(signature, np.column_stack([columns[name] for name in names]))
    values = list(chain.from_iterable(zip(*(columns[name] for name in names), strict=True)))
    return _to_matrix(signature, values, n_rows)


def object_array(values: list[Any]) -> npt.NDArray[Any]:
    """A 1-D object array holding exactly these values (``np.array`` would make fixed-width ``<U``)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def expected_names(signature: Signature) -> str:
    """The feature names for a message, the first :data:`NAME_LIMIT` of them."""
    shown = ", ".join(signature.feature_names[:NAME_LIMIT])
    more = signature.n_features - NAME_LIMIT
    return f"{shown}, … {more} more" if more > 0 else shown


# -- text ------------------------------------------------------------------------


def _text_rows(signature: Signature, rows: Any) -> npt.NDArray[Any]:
    """Texts given as bare strings, rows of one string, or a decoded array of ``[N]`` or ``[N, 1]``."""
    if isinstance(rows, np.ndarray):
        return _text_array(signature, rows)
    if not isinstance(rows, list):
        raise ShapeMismatch(f"rows must be a list of texts; got {_json_type(rows)}")
    values: list[Any] = []
    for index, row in enumerate(rows):
        if isinstance(row, list):
            if len(row) != 1:
                raise WrongFeatureCount(
                    f"row {index} has {len(row)} values; the model takes one text "
                    f"('{signature.feature_names[0]}') per row"
                )
            row = row[0]
        values.append(row)
    return _texts(signature, values)


def _text_array(signature: Signature, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    if array.ndim == 2 and array.shape[1] == 1:
        array = array.reshape(-1)
    if array.ndim != 1:
        raise ShapeMismatch(
            f"the model takes one text per row, so the input's shape must be [rows] or [rows, 1]; "
            f"got {list(array.shape)}"
        )
    if array.dtype.kind not in "OUS":
        raise InvalidValue(
            f"feature '{signature.feature_names[0]}' must be text (strings or BYTES); "
            f"got values of type {array.dtype.name}"
        )
    return _texts(signature, array.tolist())


def _texts(signature: Signature, values: list[Any]) -> npt.NDArray[Any]:
    """Strings as the 1-D object array a text model takes; bytes must be UTF-8, nothing else passes."""
    if not values:
        raise ShapeMismatch("the request has no rows; send at least one")
    name = signature.feature_names[0]
    limit = signature.max_text_bytes
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
    return object_array(values)


# -- tables ----------------------------------------------------------------------


def _to_matrix(signature: Signature, values: list[Any], n_rows: int) -> npt.NDArray[Any]:
    """A matrix of ``n_rows`` rows from their values, row-major: only numbers pass."""
    if n_rows == 0:
        raise ShapeMismatch("the request has no rows; send at least one")
    # bool is not int here: type() sees the exact class, so true/false are refused like strings.
    kinds = set(map(type, values))
    if not kinds <= _NUMERIC_KINDS:
        values = _numbers_or_nan(signature, values, kinds)
    try:
        matrix = np.array(values, dtype=signature.dtype)
    except OverflowError:
        _raise_out_of_range(signature, values)
    return _check_finite(signature, matrix.reshape(n_rows, signature.n_features))


def _check_array(signature: Signature, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    n_features = signature.n_features
    if array.ndim == 1 and n_features == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        raise ShapeMismatch(
            f"the input must be a 2-D table of rows by {n_features} features; "
            f"got {array.ndim} dimension(s) of shape {list(array.shape)}"
        )
    if array.shape[1] != n_features:
        raise WrongFeatureCount(
            f"the model expects {n_features} features ({expected_names(signature)}); got {array.shape[1]}"
        )
    if array.shape[0] == 0:
        raise ShapeMismatch("the request has no rows; send at least one")
    if array.dtype.kind not in "biuf":
        raise InvalidValue(f"the input must be numeric; got values of type {array.dtype.name}")
    return _check_finite(signature, array.astype(signature.dtype, copy=False))


def _check_finite(signature: Signature, matrix: npt.NDArray[Any]) -> npt.NDArray[Any]:
    if matrix.dtype.kind == "f" and not np.isfinite(matrix).all():
        bad = np.argwhere(~np.isfinite(matrix))
        if signature.allow_missing and not np.isinf(matrix).any():
            return matrix
        row, col = (int(i) for i in bad[0])
        raise InvalidValue(
            f"feature '{signature.feature_names[col]}' in row {row} is {matrix[row, col]}; "
            "values must be finite numbers"
        )
    return matrix


def _numbers_or_nan(signature: Signature, values: list[Any], kinds: set[type]) -> list[Any]:
    """The values with nulls as NaN where missing values are allowed; else the first non-number refused."""
    if signature.allow_missing and kinds <= _NUMERIC_OR_NULL_KINDS:
        return [math.nan if value is None else value for value in values]
    allowed = _NUMERIC_OR_NULL_KINDS if signature.allow_missing else _NUMERIC_KINDS
    position, value = next((i, v) for i, v in enumerate(values) if type(v) not in allowed)
    row, col = divmod(position, signature.n_features)
    raise InvalidValue(
        f"feature '{signature.feature_names[col]}' in row {row} must be a number; "
        f"got {_json_type(value)} {_preview(value)}".rstrip()
    )


def _raise_out_of_range(signature: Signature, values: list[Any]) -> NoReturn:
    """Refuse the first integer too large for the model's number type (JSON allows any length)."""
    for position, value in enumerate(values):
        try:
            np.array(value, dtype=signature.dtype)
        except OverflowError:
            row, col = divmod(position, signature.n_features)
            raise InvalidValue(
                f"feature '{signature.feature_names[col]}' in row {row} is an integer of "
                f"{value.bit_length()} bits, too large for {signature.dtype.name}; "
                "values must be finite numbers"
            ) from None
    raise InvalidValue("a value is out of range for the model's number type")


def _raise_key_mismatch(
    signature: Signature, record: Mapping[str, Any], index: int | None, n_rows: int
) -> None:
    where = f" in row {index}" if index is not None and n_rows > 1 else ""
    missing = [name for name in signature.feature_names if name not in record]
    if missing:
        raise MissingFeature(
            f"missing feature{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing[:NAME_LIMIT])}{where}; "
            f"the model expects {expected_names(signature)}"
        )
    unknown = [str(key) for key in record if key not in signature.feature_set]
    raise UnknownFeature(
        f"unknown feature{'s' if len(unknown) > 1 else ''} "
        f"{', '.join(repr(clip(u)) for u in unknown[:NAME_LIMIT])}{where}; "
        f"the model expects {expected_names(signature)}"
    )


# -- describing values in messages ------------------------------------------------


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
    if isinstance(value, (str, bool)):
        return clip(json.dumps(value))
    return ""
