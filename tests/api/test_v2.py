"""Open Inference Protocol routes, through Flask's test client."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from flask.testing import FlaskClient

from flaskserve import testing
from flaskserve.models.registry import ModelEntry, ModelState
from flaskserve.runtime import get_runtime

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


def infer(client: FlaskClient, body: Any, model: str = "iris/versions/1", **kwargs: Any) -> Any:
    return client.post(f"/v2/models/{model}/infer", json=body, **kwargs)


def test_server_metadata_advertises_the_extensions(client: FlaskClient) -> None:
    body = client.get("/v2").get_json()

    assert body["name"] == "flaskserve"
    assert set(body["extensions"]) == {"binary_tensor_data", "classification", "model_repository"}


def test_model_metadata_and_readiness(client: FlaskClient) -> None:
    latest = client.get("/v2/models/iris")
    pinned = client.get("/v2/models/iris/versions/1")
    columns = client.get("/v2/models/linear?content_type=pd")

    assert latest.status_code == 200
    assert latest.get_json()["versions"] == ["1", "2"]
    assert latest.headers["X-Model-Version"] == "2"
    assert pinned.get_json()["outputs"][0] == {"name": "predict", "datatype": "BYTES", "shape": [-1]}
    assert [i["name"] for i in columns.get_json()["inputs"]] == ["x", "y"]
    assert client.get("/v2/models/iris/ready").status_code == 200
    assert client.get("/v2/models/iris/versions/2/ready").get_json()["ready"] is True


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/v2/models/nope", id="metadata"),
        pytest.param("/v2/models/iris/versions/9", id="metadata of a version"),
        pytest.param("/v2/models/nope/ready", id="readiness"),
        pytest.param("/v2/models/iris/versions/9/ready", id="readiness of a version"),
    ],
)
def test_unknown_model_or_version_is_404(client: FlaskClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 404
    assert "error" in response.get_json()


def test_model_not_ready_is_503(client: FlaskClient) -> None:
    registry = get_runtime(client.application).registry
    registry.set_entry(ModelEntry("linear", "2", ModelState.LOADING))
    body = {"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}

    ready = client.get("/v2/models/linear/versions/2/ready")
    answer = infer(client, body, model="linear/versions/2")

    assert ready.status_code == 503
    assert ready.get_json()["ready"] is False
    assert answer.status_code == 503
    assert "loading" in answer.get_json()["error"]


def test_infer_echoes_the_id_and_answers_every_method(client: FlaskClient, iris_classifier: Any) -> None:
    body = {"id": "abc", "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": IRIS_ROW}]}

    response = infer(client, body)

    assert response.status_code == 200
    assert response.headers["X-Model-Name"] == "iris"
    document = response.get_json()
    assert document["id"] == "abc"
    assert document["model_name"] == "iris"
    assert document["model_version"] == "1"
    names = [o["name"] for o in document["outputs"]]
    assert names == ["predict", "predict_proba", "predict_log_proba", "decision_function"]
    assert document["outputs"][0]["data"] == ["setosa"]


def test_nested_and_flat_data_answer_the_same(client: FlaskClient) -> None:
    rows = [IRIS_ROW, [6.7, 3.0, 5.2, 2.3]]
    flat = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64", "data": rows[0] + rows[1]}]}
    nested = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64", "data": rows}]}

    assert infer(client, flat).get_json() == infer(client, nested).get_json()


def test_output_subset_picks_the_method_per_request(client: FlaskClient) -> None:
    body = {
        "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": IRIS_ROW}],
        "outputs": [{"name": "predict_proba"}],
    }

    [output] = infer(client, body).get_json()["outputs"]

    assert output["name"] == "predict_proba"
    assert output["shape"] == [1, 3]
    assert sum(output["data"]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            {
                "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": IRIS_ROW}],
                "outputs": [{"name": "transform"}],
            },
            "unknown output 'transform'",
            id="unknown output",
        ),
        pytest.param(
            {
                "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": IRIS_ROW}],
                "outputs": [{"name": "predict"}, {"name": "predict"}],
            },
            "requested twice",
            id="duplicate outputs",
        ),
        pytest.param(
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": IRIS_ROW}]},
            "missing input 'input'",
            id="missing input",
        ),
        pytest.param(
            {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64", "data": IRIS_ROW}]},
            "holds 8 elements; 'data' has 4",
            id="shape and data disagree",
        ),
        pytest.param(
            {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": IRIS_ROW[:3]}]},
            "expects 4 features",
            id="wrong feature count",
        ),
        pytest.param(
            {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, None]}]},
            "element 3 is null",
            id="null value",
        ),
        pytest.param(
            {
                "inputs": [
                    {"name": "input", "shape": [1, 4], "datatype": "FP64", "data": IRIS_ROW, "extra": 1}
                ]
            },
            "extra",
            id="unknown field",
        ),
        pytest.param({"inputs": "x"}, "inputs", id="inputs not a list"),
    ],
)
def test_bad_inference_requests_are_400(client: FlaskClient, body: Any, message: str) -> None:
    response = infer(client, body)

    assert response.status_code == 400
    assert message in response.get_json()["error"]


def test_regressor_rejects_classification(client: FlaskClient) -> None:
    body = {
        "inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}],
        "outputs": [{"name": "predict", "parameters": {"classification": 1}}],
    }

    response = infer(client, body, model="linear")

    assert response.status_code == 400
    assert "not a classifier" in response.get_json()["error"]


def test_binary_request_and_response(client: FlaskClient, diabetes_regressor: Any) -> None:
    rows = testing.diabetes_rows(3)
    raw = rows.astype("<f4").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [3, 10],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
        }
    )

    response = client.post(
        "/v2/models/diabetes/infer",
        data=header + raw,
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )

    assert response.status_code == 200
    length = int(response.headers["Inference-Header-Content-Length"])
    document = orjson.loads(response.data[:length])
    [output] = document["outputs"]
    assert output["datatype"] == "FP64"
    assert output["parameters"]["binary_data_size"] == 24
    values = np.frombuffer(response.data[length:], dtype="<f8")
    np.testing.assert_allclose(values, diabetes_regressor.predict(rows.astype(np.float32)), rtol=1e-6)


def test_raw_binary_body_is_one_row(client: FlaskClient) -> None:
    response = client.post(
        "/v2/models/linear/infer",
        data=np.array([1.0, 2.0], dtype="<f8").tobytes(),
        headers={"Inference-Header-Content-Length": "0"},
    )

    assert response.status_code == 200
    [output] = response.get_json()["outputs"]
    assert output["data"][0] == pytest.approx(7.0, abs=0.01)


@pytest.mark.parametrize(
    ("data", "headers", "status"),
    [
        pytest.param(b"{}", {"Inference-Header-Content-Length": "x"}, 400, id="header length not a number"),
        pytest.param(b"{}", {"Inference-Header-Content-Length": "10"}, 400, id="header length past the body"),
        pytest.param(b"\xff\xfe", {}, 400, id="not JSON"),
        pytest.param(b"", {}, 400, id="empty body"),
        pytest.param(b"{}", {"Content-Type": "text/plain"}, 415, id="wrong media type"),
        pytest.param(b"{}", {"Content-Encoding": "gzip"}, 415, id="compressed body"),
    ],
)
def test_malformed_bodies_get_json_errors(
    client: FlaskClient, data: bytes, headers: dict[str, str], status: int
) -> None:
    response = client.post("/v2/models/linear/infer", data=data, headers=headers)

    assert response.status_code == status
    assert response.is_json
    assert "error" in response.get_json()


def test_unknown_model_infer_is_404(client: FlaskClient) -> None:
    response = infer(client, {"inputs": []}, model="nope")

    assert response.status_code == 404


def test_too_many_elements_are_refused_without_allocating(client: FlaskClient) -> None:
    body = {
        "inputs": [
            {
                "name": "input",
                "shape": [10**9, 10**9],
                "datatype": "FP64",
                "parameters": {"binary_data_size": 0},
            }
        ]
    }
    header = orjson.dumps(body)

    response = client.post(
        "/v2/models/linear/infer", data=header, headers={"Inference-Header-Content-Length": str(len(header))}
    )

    assert response.status_code == 400
    assert response.get_json()["code"] == "limit_exceeded"
