"""A thousand rows decode to the matrix a row-by-row check gives, and a bad one is named exactly.

The decoders check many rows in a few passes and fall back to a row-by-row walk only to
name the first offender: these cases pin that the answers and the messages are the
row-by-row ones wherever in a large request the bad value sits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from flaskserve.errors import (
    FlaskserveError,
    InvalidValue,
    LimitExceeded,
    MissingFeature,
    ShapeMismatch,
    UnknownFeature,
    WrongFeatureCount,
)
from flaskserve.models.signature import Signature
from flaskserve.protocols.payload import decode_json, json_depth
from flaskserve.protocols.simple import decode_request

XY = Signature(("x", "y"), ("predict",))
XY_MISSING = Signature(("x", "y"), ("predict",), allow_missing=True)
N_ROWS = 1000
ROWS = [[i / 8, -i / 4] for i in range(N_ROWS)]
EXPECTED = np.array(ROWS, dtype=np.float64)


def with_row(index: int, row: Any) -> list[Any]:
    rows: list[Any] = [list(r) for r in ROWS]
    rows[index] = row
    return rows


def by_name(rows: list[Any]) -> list[Any]:
    """Rows as records, keys deliberately not in signature order."""
    return [{"y": row[1], "x": row[0]} for row in rows]


def matrix(payload: Any, signature: Signature = XY) -> Any:
    return decode_request(payload, signature, default_method="predict").matrix


def test_positional_and_named_rows_give_the_same_float64_matrix() -> None:
    positional = matrix({"instances": ROWS})
    named = matrix({"instances": by_name(ROWS)})

    assert positional.dtype == named.dtype == np.float64
    np.testing.assert_array_equal(positional, EXPECTED)
    np.testing.assert_array_equal(named, EXPECTED)


def test_integers_and_floats_mix_and_big_integers_become_floats() -> None:
    rows = [[1, 2.5], [2**64, -(2**63)]]
    np.testing.assert_array_equal(matrix({"instances": rows}), np.array([[1.0, 2.5], [2.0**64, -(2.0**63)]]))


def test_nulls_become_nan_where_missing_values_are_allowed() -> None:
    rows = with_row(700, [None, 1.0])
    for payload in ({"instances": rows}, {"instances": by_name(rows)}):
        decoded = matrix(payload, XY_MISSING)
        assert np.isnan(decoded[700, 0])
        assert np.isnan(decoded).sum() == 1


@pytest.mark.parametrize(
    ("rows", "error", "message"),
    [
        pytest.param(
            with_row(500, [1.0, 2.0, 3.0]),
            WrongFeatureCount,
            "row 500 has 3 values; the model expects 2 (x, y)",
            id="a ragged row in the middle",
        ),
        pytest.param(
            with_row(N_ROWS - 1, [1.0]),
            WrongFeatureCount,
            "row 999 has 1 values; the model expects 2 (x, y)",
            id="a short last row",
        ),
        pytest.param(
            with_row(7, 5),
            ShapeMismatch,
            "row 7 must be a list of 2 values; got number",
            id="a row not a list",
        ),
        pytest.param(
            with_row(3, [1.0, None]),
            InvalidValue,
            "feature 'y' in row 3 must be a number; got null",
            id="a null where missing values are not allowed",
        ),
        pytest.param(
            with_row(10, [True, 1.0]),
            InvalidValue,
            "feature 'x' in row 10 must be a number; got boolean true",
            id="a boolean is not a number",
        ),
        pytest.param(
            with_row(11, [1.0, "1.5"]),
            InvalidValue,
            "feature 'y' in row 11 must be a number; got string \"1.5\"",
            id="a number in a string",
        ),
        pytest.param(
            with_row(12, [10**400, 1.0]),
            InvalidValue,
            "feature 'x' in row 12 is an integer of 1329 bits, too large for float64; "
            "values must be finite numbers",
            id="an integer beyond float64",
        ),
        pytest.param(
            with_row(13, [float("inf"), 1.0]),
            InvalidValue,
            "feature 'x' in row 13 is inf; values must be finite numbers",
            id="infinity from a decoder that allows it",
        ),
        pytest.param(
            with_row(14, [float("nan"), 1.0]),
            InvalidValue,
            "feature 'x' in row 14 is nan; values must be finite numbers",
            id="NaN where missing values are not allowed",
        ),
        pytest.param(
            with_row(15, [[1.0], 1.0]),
            InvalidValue,
            "feature 'x' in row 15 must be a number; got array",
            id="a nested list as a value",
        ),
        pytest.param(
            with_row(16, "ab"),
            ShapeMismatch,
            "row 16 must be a list of 2 values; got string",
            id="a string as long as a row",
        ),
        pytest.param([], ShapeMismatch, "the request has no rows; send at least one", id="no rows"),
    ],
)
def test_a_bad_positional_row_is_named_as_a_row_by_row_check_names_it(
    rows: list[Any], error: type[FlaskserveError], message: str
) -> None:
    with pytest.raises(error) as raised:
        matrix({"instances": rows})
    assert raised.value.message == message


@pytest.mark.parametrize(
    ("last_record", "error", "message"),
    [
        pytest.param(
            {"x": 1.0}, MissingFeature, "missing feature 'y' in row 999; the model expects x, y", id="missing"
        ),
        pytest.param(
            {"x": 1.0, "y": 2.0, "z": 3.0},
            UnknownFeature,
            "unknown feature 'z' in row 999; the model expects x, y",
            id="one name too many",
        ),
        pytest.param(
            {"x": 1.0, "Y": 2.0},
            MissingFeature,
            "missing feature 'y' in row 999; the model expects x, y",
            id="a wrong name of the right count",
        ),
        pytest.param(
            {"x": 1.0, "y": False},
            InvalidValue,
            "feature 'y' in row 999 must be a number; got boolean false",
            id="a boolean by name",
        ),
    ],
)
def test_a_bad_record_is_named_as_a_row_by_row_check_names_it(
    last_record: dict[str, Any], error: type[FlaskserveError], message: str
) -> None:
    records = [*by_name(ROWS[:-1]), last_record]
    with pytest.raises(error) as raised:
        matrix({"instances": records})
    assert raised.value.message == message


def test_an_object_as_wide_as_a_row_is_not_a_positional_row() -> None:
    with pytest.raises(ShapeMismatch) as raised:
        XY.matrix_from_rows(with_row(5, {"x": 1.0, "y": 2.0}))
    assert raised.value.message == "row 5 must be a list of 2 values; got object"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        pytest.param(
            with_row(400, [1.0, True]),
            "feature 'y' in row 400 must be a number; got boolean true",
            id="a boolean after a null",
        ),
        pytest.param(
            with_row(600, ["1", None]),
            "feature 'x' in row 600 must be a number; got string \"1\"",
            id="a string beside a null",
        ),
    ],
)
def test_where_nulls_pass_the_first_other_non_number_is_named(rows: list[Any], message: str) -> None:
    rows[3] = [None, 1.0]
    for payload in ({"instances": rows}, {"instances": by_name(rows)}):
        with pytest.raises(InvalidValue) as raised:
            matrix(payload, XY_MISSING)
        assert raised.value.message == message


@pytest.mark.parametrize(
    ("last_record", "message"),
    [
        pytest.param(
            {"x": "1", "y": 2.0}, "feature 'x' in row 999 must be a number; got string \"1\"", id="a string"
        ),
        pytest.param({"x": None, "y": 2.0}, "feature 'x' in row 999 must be a number; got null", id="a null"),
        pytest.param(
            {"x": 1.0, "y": 10**400},
            "feature 'y' in row 999 is an integer of 1329 bits, too large for float64; "
            "values must be finite numbers",
            id="an integer beyond float64",
        ),
    ],
)
def test_a_bad_value_by_name_is_named_by_row_and_feature(last_record: dict[str, Any], message: str) -> None:
    records = [*by_name(ROWS[:-1]), last_record]
    with pytest.raises(InvalidValue) as raised:
        matrix({"instances": records})
    assert raised.value.message == message


def test_a_one_feature_model_names_a_bad_value_by_row() -> None:
    one = Signature(("x",), ("predict",))
    with pytest.raises(InvalidValue) as raised:
        matrix({"instances": [{"x": float(i)} for i in range(500)] + [{"x": "a"}]}, one)
    assert raised.value.message == "feature 'x' in row 500 must be a number; got string \"a\""


def test_columns_give_the_matrix_of_rows_and_name_a_bad_value_by_row() -> None:
    columns = {"x": [row[0] for row in ROWS], "y": [row[1] for row in ROWS]}
    np.testing.assert_array_equal(XY.matrix_from_columns(columns), EXPECTED)

    columns["y"][600] = False
    with pytest.raises(InvalidValue) as raised:
        XY.matrix_from_columns(columns)
    assert raised.value.message == "feature 'y' in row 600 must be a number; got boolean false"


def test_records_mixed_with_lists_are_refused() -> None:
    with pytest.raises(ShapeMismatch, match="not a mix"):
        matrix({"instances": [*by_name(ROWS[:5]), [1.0, 2.0]]})
    with pytest.raises(ShapeMismatch, match="not a mix"):
        matrix({"instances": [*ROWS[:5], {"x": 1.0, "y": 2.0}]})


def test_a_one_feature_model_takes_records_and_rows() -> None:
    one = Signature(("x",), ("predict",))
    expected = np.array([[1.0], [2.0]])
    np.testing.assert_array_equal(matrix({"instances": [{"x": 1.0}, {"x": 2}]}, one), expected)
    np.testing.assert_array_equal(matrix({"instances": [[1.0], [2]]}, one), expected)


def test_a_text_model_takes_many_records_by_name() -> None:
    text = Signature(("text",), ("predict",), kind="text")
    decoded = matrix({"instances": [{"text": f"message {i}"} for i in range(N_ROWS)]}, text)
    assert decoded.tolist() == [f"message {i}" for i in range(N_ROWS)]


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        pytest.param(b'{"instances": ' + str(ROWS).encode() + b"}", 3, id="a thousand positional rows"),
        pytest.param(b'["[[[[", {"a": "]]]"}]', 2, id="brackets inside strings"),
        pytest.param(b'["\\"[[[", [1]]', 2, id="an escaped quote before brackets"),
        pytest.param(b'["\\\\", [[1]]]', 3, id="an escaped backslash ends its string"),
        pytest.param(b'"' * 301 + b"[[", 0, id="an unterminated string after many quotes"),
        pytest.param(b"[" * 40 + b"]" * 40, 40, id="deep"),
    ],
)
def test_the_depth_scan_ignores_brackets_in_strings(body: bytes, depth: int) -> None:
    assert json_depth(body) == depth


def test_a_large_body_nested_too_deep_is_refused_before_parsing() -> None:
    body = b'{"instances": ' + str(ROWS).encode()[:-1] + b", " + b"[" * 40 + b"1" + b"]" * 41 + b"}"
    with pytest.raises(LimitExceeded, match="nested more than 32 levels deep"):
        decode_json(body, max_depth=32)
    assert decode_json(b'{"instances": ' + str(ROWS).encode() + b"}", max_depth=32)["instances"] == ROWS
