"""The shortcuts large bodies take give the answers and the errors of the long way round.

The depth check proves most bodies shallow without measuring them, answers hand
numpy arrays to orjson, and KServe V1 unwraps ``{"b64": ...}`` values only when
the values as sent are refused: each is pinned here against what it replaces.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import orjson
import pytest

from flaskserve.errors import FlaskserveError, InvalidValue, LimitExceeded, ShapeMismatch
from flaskserve.models.signature import Signature
from flaskserve.protocols import mlflow, v1
from flaskserve.protocols.payload import encode_json, json_depth, json_values, nested_deeper_than
from flaskserve.settings import RequestLimits

XY = Signature(("x", "y"), ("predict",))
TEXT = Signature(("text",), ("predict",), kind="text", max_text_bytes=8)
ROWS = [[i / 8, -i / 4] for i in range(1000)]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(orjson.dumps({"instances": ROWS}), id="a thousand positional rows"),
        pytest.param(orjson.dumps([{"x": 1, "y": [2, {"z": []}]}] * 50), id="records with nested values"),
        pytest.param(b'["[[[[", {"a": "]]]"}]', id="brackets inside strings"),
        pytest.param(b'["", "[", ""]', id="empty strings around a bracket in a string"),
        pytest.param(b'["\\"[[[", [1]]', id="an escaped quote before brackets"),
        pytest.param(b"[[[[[[", id="unclosed brackets"),
        pytest.param(b"]]]][[[[", id="closers before openers"),
        pytest.param(b'{"a": "x', id="an unterminated string"),
        pytest.param(b"[" * 40 + b"]" * 40, id="deep"),
        pytest.param(b"[{" * 20 + b"}]" * 20, id="deep, brackets and braces"),
        pytest.param(b"[" * 5 + b"]" * 5 + b"[" * 9 + b"]" * 9, id="deep after shallow"),
    ],
)
@pytest.mark.parametrize("max_depth", [1, 3, 8, 32, 39, 40])
def test_the_depth_check_agrees_with_the_exact_scan(body: bytes, max_depth: int) -> None:
    assert nested_deeper_than(body, max_depth) == (json_depth(body) > max_depth)


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(np.random.default_rng(0).normal(size=1000) * 1e10, id="float64"),
        pytest.param(np.array([0.1, -0.0, 1e16, 5e-324, 1.0]), id="float64 edge values"),
        pytest.param(np.arange(12.0).reshape(4, 3), id="float64 rows"),
        pytest.param(np.arange(12.0).reshape(4, 3)[:, 1], id="a column, not contiguous"),
        pytest.param(np.array([-(2**63), 2**63 - 1]), id="int64"),
        pytest.param(np.array([0, 255], dtype=np.uint8), id="uint8"),
        pytest.param(np.array([True, False]), id="bool"),
        pytest.param(np.array([0.1, 1 / 3], dtype=np.float32), id="float32 as its float64 value"),
        pytest.param(np.array([0.1], dtype=np.float16), id="float16"),
        pytest.param(np.array(["setosa", "virginica"], dtype=object), id="labels"),
        pytest.param(np.array([], dtype=np.float64), id="empty"),
    ],
)
def test_an_answer_encodes_as_its_list_would(values: np.ndarray[Any, Any]) -> None:
    assert encode_json({"predictions": json_values(values)}) == orjson.dumps({"predictions": values.tolist()})


def _b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode()}


def v1_matrix(payload: Any, signature: Signature) -> Any:
    return v1.decode_request(payload, signature, default_method="predict").matrix


def test_b64_values_are_unwrapped_in_rows_records_and_columns() -> None:
    expected = ["hi", "bye"]
    for payload in (
        {"instances": [_b64(b"hi"), "bye"]},
        {"instances": [[_b64(b"hi")], ["bye"]]},
        {"instances": [{"text": _b64(b"hi")}, {"text": "bye"}]},
        {"inputs": {"text": [_b64(b"hi"), "bye"]}},
    ):
        assert v1_matrix(payload, TEXT).tolist() == expected


@pytest.mark.parametrize(
    ("payload", "signature", "error", "message"),
    [
        pytest.param(
            {"instances": ["a text too long", {"b64": "!!"}]},
            TEXT,
            InvalidValue,
            "'!!' is not valid base64",
            id="bad base64 after a value refused for another reason",
        ),
        pytest.param(
            {"instances": [*ROWS[:3], _b64(b"hi")]},
            XY,
            ShapeMismatch,
            "row 3 must be a list of 2 values; got bytes",
            id="a b64 row among positional rows",
        ),
        pytest.param(
            {"instances": [{"x": 1.0, "y": _b64(b"hi")}]},
            XY,
            InvalidValue,
            "feature 'y' in row 0 must be a number; got bytes",
            id="a b64 value where a number belongs",
        ),
        pytest.param(
            {"instances": ["short", _b64(b"a text too long")]},
            TEXT,
            LimitExceeded,
            "feature 'text' in row 1 is 15 bytes of UTF-8 text; at most 8 are accepted",
            id="a b64 text over the limit",
        ),
        pytest.param(
            {"instances": [{"b64": 1.5}]},
            Signature(("b64",), ("predict",)),
            InvalidValue,
            'a {"b64": ...} value must hold a base64 string',
            id="a record of a feature named b64 is read as a wrapper",
        ),
    ],
)
def test_b64_values_are_judged_as_if_unwrapped_first(
    payload: Any, signature: Signature, error: type[FlaskserveError], message: str
) -> None:
    with pytest.raises(error) as raised:
        v1_matrix(payload, signature)
    assert raised.value.message == message


def mlflow_matrix(document: Any) -> Any:
    body = orjson.dumps(document)
    return mlflow.decode_request(body, mlflow.JSON, XY, RequestLimits(), default_method="predict").matrix


def test_a_dataframe_split_in_any_column_order_gives_the_matrix() -> None:
    swapped = [[y, x] for x, y in ROWS]
    np.testing.assert_array_equal(
        mlflow_matrix({"dataframe_split": {"columns": ["y", "x"], "data": swapped}}), np.array(ROWS)
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            [*ROWS[:700], [1.0]],
            "row 700 has 1 values but 'dataframe_split.columns' names 2 columns",
            id="a short row",
        ),
        pytest.param(
            [*ROWS[:5], {"x": 1.0, "y": 2.0}],
            "'dataframe_split.data' must be a list of rows, each a list of values",
            id="an object row",
        ),
    ],
)
def test_a_bad_dataframe_split_row_is_named(data: list[Any], message: str) -> None:
    with pytest.raises(ShapeMismatch) as raised:
        mlflow_matrix({"dataframe_split": {"columns": ["x", "y"], "data": data}})
    assert raised.value.message == message
