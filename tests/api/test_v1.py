"""KServe V1 / TensorFlow Serving routes, through Flask's test client."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from flask.testing import FlaskClient


def test_model_listing_and_status(client: FlaskClient) -> None:
    assert client.get("/v1/models").get_json() == {"models": ["diabetes", "exploding", "iris", "linear"]}
    assert client.get("/v1/models/iris").get_json() == {"name": "iris", "ready": True}
    assert client.get("/v1/models/nope").status_code == 404


def test_instances_answer_predictions(client: FlaskClient) -> None:
    response = client.post("/v1/models/linear:predict", json={"instances": [[1, 2]]})

    assert response.status_code == 200
    assert response.headers["X-Model-Name"] == "linear"
    [prediction] = response.get_json()["predictions"]
    assert prediction == pytest.approx(7.0, abs=0.01)


def test_columns_answer_outputs(client: FlaskClient) -> None:
    response = client.post(
        "/v1/models/linear/versions/1:predict", json={"inputs": {"x": [1, 3], "y": [2, 4]}}
    )

    assert response.status_code == 200
    assert response.get_json()["outputs"] == pytest.approx([7.0, 15.0], abs=0.01)


def test_signature_name_picks_the_method(client: FlaskClient) -> None:
    body = {"instances": [[5.1, 3.5, 1.4, 0.2]], "signature_name": "predict_proba"}

    [probabilities] = client.post("/v1/models/iris/versions/1:predict", json=body).get_json()["predictions"]

    assert sum(probabilities) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param({"instances": [[1, 2]], "inputs": [[1, 2]]}, "exactly one", id="both formats"),
        pytest.param({}, "exactly one", id="neither format"),
        pytest.param({"instances": [[1, 2]], "foo": 1}, "foo", id="unknown key"),
        pytest.param({"instances": [{"x": 1}]}, "missing feature 'y'", id="missing feature"),
        pytest.param({"instances": [[1, 2], {"x": 1, "y": 2}]}, "not a mix", id="mixed rows"),
        pytest.param(
            {"instances": [{"x": {"b64": base64.b64encode(b"hi").decode()}, "y": 1}]},
            "must be a number",
            id="bytes value",
        ),
        pytest.param({"instances": [{"x": {"b64": "!!"}, "y": 1}]}, "not valid base64", id="bad base64"),
        pytest.param(
            {"instances": [[1, 2]], "signature_name": "transform"},
            "no method 'transform'",
            id="unknown method",
        ),
    ],
)
def test_bad_requests_are_400(client: FlaskClient, body: Any, message: str) -> None:
    response = client.post("/v1/models/linear:predict", json=body)

    assert response.status_code == 400
    assert message in response.get_json()["error"]
