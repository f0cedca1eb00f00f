"""The Open Inference Protocol as pure functions: request bytes in, matrix out, and back."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from flaskserve.errors import BadRequest, LimitExceeded, MissingFeature, ShapeMismatch, UnsupportedMethod
from flaskserve.models.served import ServedModel
from flaskserve.models.signature import Signature
from flaskserve.protocols import binary, datatypes, v2
from flaskserve.settings import RequestLimits

LIMITS = RequestLimits()
IRIS = Signature(
    feature_names=("sepal_length", "sepal_width", "petal_length", "petal_width"),
    methods=("predict", "predict_proba", "decision_function"),
    classes=("setosa", "versicolor", "virginica"),
)
XY = Signature(feature_names=("x", "y"), methods=("predict",))
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.0, 3.0, 5.0, 2.0]]


def tensor(
    data: Any, shape: list[int], datatype: str = "FP64", name: str = "input", **extra: Any
) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data, **extra}


def decode(
    document: Any, signature: Signature = IRIS, rest: bytes = b"", limits: RequestLimits = LIMITS
) -> Any:
    return v2.decode_infer_request(orjson.dumps(document), rest, signature, limits)


def served(signature: Signature, name: str = "iris") -> ServedModel:
    return ServedModel(name, "1", None, signature, "sklearn_skops", "0" * 64, Path("model.skops"))


def test_flat_and_nested_data_give_the_same_matrix() -> None:
    flat = decode({"inputs": [tensor([v for row in ROWS for v in row], [2, 4])]})
    nested = decode({"inputs": [tensor(ROWS, [2, 4])]})

    np.testing.assert_array_equal(flat.matrix, np.array(ROWS))
    np.testing.assert_array_equal(nested.matrix, flat.matrix)


def test_one_input_per_feature_is_a_table_of_columns() -> None:
    columns = [tensor([row[i] for row in ROWS], [2], name=n) for i, n in enumerate(IRIS.feature_names)]

    by_name = decode({"inputs": list(reversed(columns)), "parameters": {"content_type": "pd"}})
    detected = decode({"inputs": columns})

    np.testing.assert_array_equal(by_name.matrix, np.array(ROWS))
    np.testing.assert_array_equal(detected.matrix, np.array(ROWS))


@pytest.mark.parametrize("datatype", [d for d in datatypes.DATATYPES if d not in ("BYTES", "BOOL")])
def test_every_numeric_datatype_decodes_from_json(datatype: str) -> None:
    request = decode({"inputs": [tensor([1, 2, 3, 4], [1, 4], datatype)]})

    np.testing.assert_array_equal(request.matrix, [[1.0, 2.0, 3.0, 4.0]])


@pytest.mark.parametrize("datatype", [d for d in datatypes.DATATYPES if d not in ("BYTES", "BF16")])
def test_every_fixed_size_datatype_decodes_from_binary(datatype: str) -> None:
    values = np.array([[1, 0, 1, 1]], dtype=datatypes.wire_dtype(datatype))
    raw = values.tobytes()
    document = {
        "inputs": [
            {
                "name": "input",
                "shape": [1, 4],
                "datatype": datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        ]
    }

    request = decode(document, rest=raw)

    np.testing.assert_array_equal(request.matrix, [[1.0, 0.0, 1.0, 1.0]])


def test_bf16_binary_widens_exactly_to_float32() -> None:
    values = np.array([1.5, -2.0, 0.25, 3.0], dtype=np.float32)
    raw = (values.view(np.uint32) >> 16).astype("<u2").tobytes()

    array = binary.decode_tensor(raw, "BF16", [1, 4], name="input", max_string_bytes=10)

    np.testing.assert_array_equal(array, [values])


def test_fp16_sent_as_json_numbers_is_narrowed_to_half_precision() -> None:
    request = decode({"inputs": [tensor([0.1, 1, 2.5, 65504], [1, 4], "FP16")]})

    np.testing.assert_array_equal(request.matrix, np.array([[0.1, 1, 2.5, 65504]], dtype=np.float16))


def test_fp16_json_number_beyond_half_range_is_a_400() -> None:
    with pytest.raises(BadRequest, match="finite"):
        decode({"inputs": [tensor([1e6, 1, 2, 3], [1, 4], "FP16")]})


@pytest.mark.parametrize(
    ("document", "error", "message"),
    [
        pytest.param(
            {"inputs": [tensor([1, 2, 3], [1, 4])]},
            ShapeMismatch,
            "holds 4 elements; 'data' has 3",
            id="data shorter than shape",
        ),
        pytest.param(
            {"inputs": [tensor([], [-1, 4])]}, ShapeMismatch, "non-negative", id="negative dimension"
        ),
        pytest.param(
            {"inputs": [tensor([], [100_000, 100_000, 100])]},
            LimitExceeded,
            "declares 1000000000000 elements",
            id="huge shape, no data",
        ),
        pytest.param(
            {"inputs": [tensor(["a", 1, 2, 3], [1, 4])]},
            BadRequest,
            "element 0 is string",
            id="string in FP64",
        ),
        pytest.param(
            {"inputs": [tensor([1.5, 1, 2, 3], [1, 4], "INT32")]},
            BadRequest,
            "element 0 is number",
            id="float in INT32",
        ),
        pytest.param(
            {"inputs": [tensor([300, 1, 2, 3], [1, 4], "INT8")]},
            BadRequest,
            "out of range for INT8",
            id="INT8 overflow",
        ),
        pytest.param(
            {"inputs": [tensor([True, 1, 2, 3], [1, 4], "FP32")]},
            BadRequest,
            "element 0 is boolean",
            id="bool in FP32",
        ),
        pytest.param(
            {"inputs": [tensor([1, 2, 3, 4], [1, 4], "FP128")]}, BadRequest, "datatype", id="unknown datatype"
        ),
        pytest.param(
            {"inputs": [tensor(ROWS, [2, 4]), tensor(ROWS, [2, 4])]},
            BadRequest,
            "given twice",
            id="duplicate input",
        ),
        pytest.param(
            {"inputs": [tensor([1, 2, 3, 4], [1, 4], name="features")]},
            MissingFeature,
            "missing input 'input'",
            id="missing input is named",
        ),
        pytest.param(
            {"inputs": [tensor([1.0], [1], name="sepal_length")]},
            MissingFeature,
            "'sepal_width'",
            id="missing column is named",
        ),
        pytest.param(
            {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64"}]},
            BadRequest,
            "no 'data'",
            id="no data",
        ),
        pytest.param({"inputs": []}, BadRequest, "inputs", id="no inputs"),
        pytest.param([1, 2], BadRequest, "JSON object", id="not an object"),
        pytest.param(
            {"inputs": [tensor(ROWS, [2, 4])], "outputs": [{"name": "transform"}]},
            UnsupportedMethod,
            "unknown output 'transform'",
            id="unknown output",
        ),
        pytest.param(
            {"inputs": [tensor(ROWS, [2, 4])], "outputs": [{"name": "predict"}, {"name": "predict"}]},
            BadRequest,
            "requested twice",
            id="duplicate output",
        ),
        pytest.param(
            {
                "inputs": [tensor(ROWS, [2, 4])],
                "outputs": [{"name": "predict", "parameters": {"classification": 0}}],
            },
            BadRequest,
            "positive integer",
            id="classification of zero",
        ),
        pytest.param(
            {
                "inputs": [tensor(ROWS, [2, 4])],
                "outputs": [{"name": "predict", "parameters": {"classification": 4}}],
            },
            BadRequest,
            "the model has 3",
            id="classification beyond the classes",
        ),
        pytest.param(
            {
                "inputs": [tensor(ROWS, [2, 4])],
                "outputs": [{"name": "predict", "parameters": {"binary_data": "yes"}}],
            },
            BadRequest,
            "true or false",
            id="binary_data not a boolean",
        ),
    ],
)
def test_invalid_requests_are_400s_that_say_why(document: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as raised:
        decode(document)

    assert getattr(raised.value, "status", None) == 400


def test_too_many_inputs_are_refused_before_validation() -> None:
    limits = RequestLimits(max_inputs=2)
    document = {"inputs": [tensor([1.0], [1], name=f"x{i}") for i in range(3)]}

    with pytest.raises(LimitExceeded, match="3 inputs; at most 2"):
        decode(document, limits=limits)


def test_outputs_default_to_every_method_and_echo_the_id() -> None:
    request = decode({"id": "req-1", "inputs": [tensor(ROWS, [2, 4])]})

    assert request.id == "req-1"
    assert [o.name for o in request.outputs] == list(IRIS.methods)
    assert not any(o.binary for o in request.outputs)


def test_binary_output_flags_per_request_and_per_output() -> None:
    document = {
        "inputs": [tensor(ROWS, [2, 4])],
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "predict"}, {"name": "predict_proba", "parameters": {"binary_data": False}}],
    }

    request = decode(document)

    assert [(o.name, o.binary) for o in request.outputs] == [("predict", True), ("predict_proba", False)]


def test_classifying_predict_ranks_the_probabilities() -> None:
    document = {
        "inputs": [tensor(ROWS, [2, 4])],
        "outputs": [{"name": "predict", "parameters": {"classification": 2}}],
    }
    request = decode(document)
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])

    encoded = v2.encode_infer_response(served(IRIS), request, {"predict_proba": probabilities})

    assert request.methods == ["predict_proba"]
    [output] = encoded.header["outputs"]
    assert output == {
        "name": "predict",
        "shape": [2, 2],
        "datatype": "BYTES",
        "data": ["0.7:0:setosa", "0.2:1:versicolor", "0.6:2:virginica", "0.3:1:versicolor"],
    }


def test_binary_outputs_follow_the_header_in_order() -> None:
    document = {
        "id": "7",
        "inputs": [tensor(ROWS, [2, 4])],
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    request = decode(document)
    labels = np.array(["setosa", "virginica"], dtype=object)
    probabilities = np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])

    encoded = v2.encode_infer_response(
        served(IRIS), request, {"predict": labels, "predict_proba": probabilities}
    )

    assert encoded.header["id"] == "7"
    label_out, proba_out = encoded.header["outputs"]
    assert label_out["datatype"] == "BYTES"
    assert "data" not in label_out
    assert proba_out["shape"] == [2, 3]
    assert encoded.tensors[0] == struct.pack("<I", 6) + b"setosa" + struct.pack("<I", 9) + b"virginica"
    assert label_out["parameters"]["binary_data_size"] == len(encoded.tensors[0])
    np.testing.assert_array_equal(np.frombuffer(encoded.tensors[1], "<f8").reshape(2, 3), probabilities)


def test_raw_body_without_json_header_is_one_row_of_the_single_input() -> None:
    raw = np.array([1.0, 2.0], dtype="<f8").tobytes()
    header, rest = binary.split_body(raw, "0")

    request = v2.decode_infer_request(header, rest, XY, LIMITS)

    np.testing.assert_array_equal(request.matrix, [[1.0, 2.0]])


@pytest.mark.parametrize(
    ("body", "header_length", "message"),
    [
        pytest.param(b"{}", "abc", "non-negative integer", id="not a number"),
        pytest.param(b"{}", "-1", "non-negative integer", id="negative"),
        pytest.param(b"{}", "99", "only 2 bytes", id="longer than the body"),
    ],
)
def test_bad_header_length_is_a_400(body: bytes, header_length: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        binary.split_body(body, header_length)


def test_binary_sizes_must_add_up_to_the_rest_of_the_body() -> None:
    raw = np.zeros(4, dtype="<f8").tobytes()
    document = {
        "inputs": [
            {"name": "input", "shape": [1, 4], "datatype": "FP64", "parameters": {"binary_data_size": 32}}
        ]
    }

    with pytest.raises(BadRequest, match="declare 32 bytes"):
        decode(document, rest=raw + b"extra")
    with pytest.raises(BadRequest, match="needs 32 bytes; binary_data_size gives 16"):
        decode({"inputs": [{**document["inputs"][0], "parameters": {"binary_data_size": 16}}]}, rest=raw[:16])


def test_length_prefixed_bytes_elements_decode_and_are_checked() -> None:
    raw = struct.pack("<I", 2) + b"ab" + struct.pack("<I", 0)

    array = binary.decode_tensor(raw, "BYTES", [2], name="s", max_string_bytes=10)

    assert array.tolist() == [b"ab", b""]
    with pytest.raises(BadRequest, match="ends inside a BYTES element"):
        binary.decode_tensor(struct.pack("<I", 5) + b"ab", "BYTES", [1], name="s", max_string_bytes=10)
    with pytest.raises(BadRequest, match="declares 3"):
        binary.decode_tensor(raw, "BYTES", [3], name="s", max_string_bytes=10)
    with pytest.raises(BadRequest, match="at most 1"):
        binary.decode_tensor(raw, "BYTES", [2], name="s", max_string_bytes=1)


def test_bytes_input_reaches_a_numeric_model_as_a_400() -> None:
    with pytest.raises(BadRequest, match="numeric"):
        decode({"inputs": [tensor(["a", "b", "c", "d"], [1, 4], "BYTES")]})


def test_metadata_lists_one_matrix_input_or_one_input_per_feature() -> None:
    model = served(IRIS)

    default = v2.model_metadata(model, versions=["1"])
    columns = v2.model_metadata(model, content_type="pd")

    assert default["inputs"] == [
        {"name": "input", "datatype": "FP64", "shape": [-1, 4], "parameters": {"content_type": "np"}}
    ]
    assert [i["name"] for i in columns["inputs"]] == list(IRIS.feature_names)
    assert default["outputs"] == [
        {"name": "predict", "datatype": "BYTES", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
        {"name": "decision_function", "datatype": "FP64", "shape": [-1, 3]},
    ]
    assert default["versions"] == ["1"]
    assert v2.model_metadata(served(XY, "linear"))["outputs"] == [
        {"name": "predict", "datatype": "FP64", "shape": [-1]}
    ]
