"""A text model (TF-IDF + LogisticRegression over the chat intents) through every protocol.

Each protocol must answer exactly what ``model.predict`` answers on the same
strings, and refuse anything that is not a bounded string with a clear 400.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient

from flaskserve import testing
from flaskserve.app import create_app
from flaskserve.settings import load_settings
from live_server import served_in_thread

TEXTS = ["where is my parcel", "hello there", "I want my money back", "42"]
MAX_STRING_BYTES = 200
MAX_ROWS = 50


@pytest.fixture(scope="module")
def text_repository(tmp_path_factory: pytest.TempPathFactory, intents_model: Any) -> Path:
    return testing.write_repository(
        tmp_path_factory.mktemp("text-repository"),
        {"intents": {"1": (intents_model, ".skops")}, "renamed": {"1": (intents_model, ".skops")}},
    )


def _app(repository: Path, **overrides: Any) -> Flask:
    values: dict[str, Any] = {
        "model_path": repository,
        "default_model": "intents",
        "models": {"renamed": {"features": ["utterance"]}},
        "limits": {"max_string_bytes": MAX_STRING_BYTES, "max_rows": MAX_ROWS},
    }
    values.update(overrides)
    return create_app(load_settings(None, **values))


@pytest.fixture(scope="module")
def text_client(text_repository: Path) -> FlaskClient:
    return _app(text_repository).test_client()


@pytest.fixture(scope="module")
def expected(intents_model: Any) -> list[str]:
    return list(intents_model.predict(np.array(TEXTS, dtype=object)))


# -- simple protocol ---------------------------------------------------------------------


def test_one_text_by_name(text_client: FlaskClient, expected: list[str]) -> None:
    response = text_client.post("/predict", json={"text": TEXTS[0]})
    assert response.status_code == 200
    assert response.get_json() == {"prediction": expected[0]}
    assert expected[0] == "track_order"


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param(TEXTS, id="bare strings"),
        pytest.param([{"text": t} for t in TEXTS], id="records"),
        pytest.param([[t] for t in TEXTS], id="rows of one"),
    ],
)
def test_several_texts(text_client: FlaskClient, expected: list[str], rows: list[Any]) -> None:
    response = text_client.post("/predict", json={"instances": rows})
    assert response.status_code == 200
    assert response.get_json() == {"predictions": expected}


def test_probabilities_map_by_class(text_client: FlaskClient, intents_model: Any) -> None:
    response = text_client.post("/predict?method=predict_proba", json={"text": TEXTS[1]})
    assert response.status_code == 200
    probabilities = response.get_json()["prediction"]
    want = intents_model.predict_proba(np.array(TEXTS[1:2], dtype=object))[0]
    assert probabilities == pytest.approx(dict(zip(intents_model.classes_, want, strict=True)))
    assert max(probabilities, key=probabilities.get) == "greeting"


def test_the_settings_name_the_text(text_client: FlaskClient, expected: list[str]) -> None:
    response = text_client.post("/models/renamed/predict", json={"utterance": TEXTS[0]})
    assert response.get_json() == {"prediction": expected[0]}
    described = text_client.get("/models/renamed").get_json()["versions"][0]["signature"]
    assert described["input"] == "text"
    assert described["features"] == ["utterance"]
    assert described["dtype"] == "str"


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        pytest.param({"text": 5}, "invalid_value", "feature 'text' in row 0 must be a string", id="a number"),
        pytest.param({"text": None}, "invalid_value", "feature 'text' in row 0 must be a string", id="null"),
        pytest.param(
            {"instances": ["hi", 3.5]}, "invalid_value", "feature 'text' in row 1", id="a number among texts"
        ),
        pytest.param(
            {"text": "x" * (MAX_STRING_BYTES + 1)}, "limit_exceeded", "at most 200", id="a text too long"
        ),
        pytest.param(
            {"text": "é" * (MAX_STRING_BYTES // 2 + 1)}, "limit_exceeded", "202 bytes", id="too many bytes"
        ),
        pytest.param({"instances": ["hi"] * (MAX_ROWS + 1)}, "limit_exceeded", "51 rows", id="too many rows"),
        pytest.param({"utterance": "hi"}, "missing_feature", "'text'", id="the wrong name"),
        pytest.param({"instances": []}, "shape_mismatch", "no rows", id="no rows"),
    ],
)
def test_bad_texts_are_clear_400s(text_client: FlaskClient, body: Any, code: str, message: str) -> None:
    response = text_client.post("/predict", json=body)
    assert response.status_code == 400
    assert response.get_json()["code"] == code
    assert message in response.get_json()["error"]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("x" * (MAX_STRING_BYTES + 1), id="too many characters"),
        pytest.param("é" * (MAX_STRING_BYTES // 2 + 1), id="few characters, too many bytes"),
    ],
)
def test_a_v2_json_string_over_the_byte_limit_is_limit_exceeded(text_client: FlaskClient, text: str) -> None:
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]}

    response = text_client.post("/v2/models/intents/infer", json=body)

    assert response.status_code == 400
    assert response.get_json()["code"] == "limit_exceeded"
    assert "bytes of UTF-8" in response.get_json()["error"]


def test_equal_texts_hit_the_cache(text_repository: Path) -> None:
    client = _app(text_repository, cache_size=16).test_client()
    first = client.post("/predict", json={"text": "where is my parcel"})
    again = client.post("/predict", json={"instances": [{"text": "where is my parcel"}]})
    other = client.post("/predict", json={"text": "where is my parcel?"})
    assert first.headers.get("X-Cache") != "HIT"
    assert again.headers.get("X-Cache") == "HIT"
    assert other.headers.get("X-Cache") != "HIT"
    assert again.get_json()["predictions"] == [first.get_json()["prediction"]]


def test_texts_join_a_batch(text_repository: Path, expected: list[str]) -> None:
    client = _app(text_repository, max_batch_size=8, max_batch_delay_ms=0).test_client()
    response = client.post("/predict", json={"instances": TEXTS})
    assert response.get_json() == {"predictions": expected}


# -- Open Inference Protocol (V2) ----------------------------------------------------------


def test_v2_metadata_lists_one_bytes_input(text_client: FlaskClient) -> None:
    metadata = text_client.get("/v2/models/intents").get_json()
    assert [{k: v for k, v in i.items() if k != "parameters"} for i in metadata["inputs"]] == [
        {"name": "text", "datatype": "BYTES", "shape": [-1]}
    ]
    assert {"name": "predict", "datatype": "BYTES", "shape": [-1]} in metadata["outputs"]


@pytest.mark.parametrize(
    "tensor",
    [
        pytest.param({"name": "text", "shape": [len(TEXTS)], "data": TEXTS}, id="text [N]"),
        pytest.param(
            {"name": "text", "shape": [len(TEXTS), 1], "data": [[t] for t in TEXTS]}, id="text [N, 1]"
        ),
        pytest.param({"name": "input", "shape": [len(TEXTS)], "data": TEXTS}, id="input [N]"),
        pytest.param(
            {"name": "text", "shape": [len(TEXTS)], "data": TEXTS, "parameters": {"content_type": "str"}},
            id="content_type str",
        ),
    ],
)
def test_v2_json_bytes(text_client: FlaskClient, expected: list[str], tensor: dict[str, Any]) -> None:
    body = {"inputs": [{"datatype": "BYTES", **tensor}], "outputs": [{"name": "predict"}]}
    response = text_client.post("/v2/models/intents/infer", json=body)
    assert response.status_code == 200, response.get_json()
    [output] = response.get_json()["outputs"]
    assert output == {"name": "predict", "shape": [len(TEXTS)], "datatype": "BYTES", "data": expected}


@pytest.mark.parametrize(
    "content_type", [pytest.param("str", id="str"), pytest.param(None, id="plain BYTES")]
)
def test_v2_binary_bytes(text_client: FlaskClient, expected: list[str], content_type: str | None) -> None:
    raw = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in TEXTS)
    tensor: dict[str, Any] = {
        "name": "text",
        "datatype": "BYTES",
        "shape": [len(TEXTS)],
        "parameters": {"binary_data_size": len(raw)},
    }
    if content_type is not None:
        tensor["parameters"]["content_type"] = content_type
    header = orjson.dumps({"inputs": [tensor], "outputs": [{"name": "predict"}]})
    response = text_client.post(
        "/v2/models/intents/infer",
        data=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header))},
        content_type="application/octet-stream",
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["outputs"][0]["data"] == expected


def test_v2_refuses_numbers_for_a_text_model(text_client: FlaskClient) -> None:
    body = {"inputs": [{"name": "text", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
    response = text_client.post("/v2/models/intents/infer", json=body)
    assert response.status_code == 400
    assert response.get_json()["code"] == "invalid_value"
    assert "'text' must be text" in response.get_json()["error"]


# -- KServe V1 and MLflow --------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"instances": TEXTS}, id="instances of strings"),
        pytest.param({"instances": [{"text": t} for t in TEXTS]}, id="instances by name"),
        pytest.param(
            {"instances": [{"b64": base64.b64encode(t.encode()).decode()} for t in TEXTS]}, id="b64 bytes"
        ),
    ],
)
def test_v1_predict(text_client: FlaskClient, expected: list[str], body: dict[str, Any]) -> None:
    response = text_client.post("/v1/models/intents:predict", json=body)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"predictions": expected}


def test_v1_columns(text_client: FlaskClient, expected: list[str]) -> None:
    response = text_client.post("/v1/models/intents:predict", json={"inputs": {"text": TEXTS}})
    assert response.get_json() == {"outputs": expected}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"dataframe_split": {"columns": ["text"], "data": [[t] for t in TEXTS]}}, id="split"),
        pytest.param({"dataframe_records": [{"text": t} for t in TEXTS]}, id="records"),
        pytest.param({"instances": TEXTS}, id="instances"),
    ],
)
def test_mlflow_json(text_client: FlaskClient, expected: list[str], body: dict[str, Any]) -> None:
    response = text_client.post("/invocations", json=body)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"predictions": expected}


def test_mlflow_csv_keeps_numbers_as_text(text_client: FlaskClient, expected: list[str]) -> None:
    body = "text\n" + "\n".join(f'"{t}"' for t in TEXTS) + "\n"
    response = text_client.post("/invocations", data=body, content_type="text/csv")
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"predictions": expected}


# -- Triton's own client ---------------------------------------------------------------


@pytest.fixture(scope="module")
def server_url(text_repository: Path) -> Iterator[str]:
    with served_in_thread(_app(text_repository)) as address:
        yield address


@pytest.mark.parametrize("binary", [pytest.param(False, id="JSON"), pytest.param(True, id="binary")])
def test_tritonclient_sends_bytes(server_url: str, expected: list[str], binary: bool) -> None:
    httpclient = pytest.importorskip("tritonclient.http")
    client = httpclient.InferenceServerClient(server_url)
    try:
        texts = np.array([t.encode() for t in TEXTS], dtype=object)
        tensor = httpclient.InferInput("text", [len(TEXTS)], "BYTES")
        tensor.set_data_from_numpy(texts, binary_data=binary)
        output = httpclient.InferRequestedOutput("predict", binary_data=binary)
        result = client.infer("intents", [tensor], outputs=[output])
        assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")] == expected
    finally:
        client.close()
