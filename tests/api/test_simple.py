"""The simple JSON protocol, through Flask's test client."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from flaskserve import testing


def test_tutorial_request_gets_the_tutorial_answer(client: FlaskClient, linear_xy: Any) -> None:
    response = client.post("/predict", json={"x": 1, "y": 2})

    assert response.status_code == 200
    body = response.get_json()
    assert list(body) == ["prediction"]
    assert body["prediction"] == pytest.approx(7.0, abs=0.01)
    assert response.headers["X-Model-Name"] == "linear"
    assert response.headers["X-Model-Version"] == "1"


def test_rows_by_name_and_by_position_give_the_same_predictions(client: FlaskClient) -> None:
    by_name = client.post("/predict", json={"instances": [{"y": 2, "x": 1}, {"x": 3, "y": 4}]})
    by_position = client.post("/predict", json={"instances": [[1, 2], [3, 4]]})
    bare_list = client.post("/predict", json=[{"x": 1, "y": 2}, {"x": 3, "y": 4}])

    assert by_name.status_code == by_position.status_code == bare_list.status_code == 200
    assert by_name.get_json() == by_position.get_json() == bare_list.get_json()
    assert len(by_name.get_json()["predictions"]) == 2


def test_predictions_equal_model_predict(client: FlaskClient, diabetes_regressor: Any) -> None:
    rows = testing.diabetes_rows(5)

    response = client.post("/models/diabetes/predict", json={"instances": rows.tolist()})

    assert response.status_code == 200
    np.testing.assert_allclose(response.get_json()["predictions"], diabetes_regressor.predict(rows))


def test_classifier_answers_labels_and_probability_maps(client: FlaskClient, iris_classifier: Any) -> None:
    row = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}

    label = client.post("/models/iris/versions/1/predict", json=row)
    proba = client.post("/models/iris/versions/1/predict", json={**row, "method": "predict_proba"})
    by_query = client.post("/models/iris/versions/1/predict?method=predict_proba", json=row)

    assert label.get_json() == {"prediction": "setosa"}
    probabilities = proba.get_json()["prediction"]
    assert set(probabilities) == {"setosa", "versicolor", "virginica"}
    assert sum(probabilities.values()) == pytest.approx(1.0)
    assert max(probabilities, key=probabilities.get) == "setosa"
    assert by_query.get_json() == proba.get_json()


def test_latest_version_serves_requests_that_name_none(client: FlaskClient) -> None:
    row = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}

    response = client.post("/models/iris/predict", json=row)

    assert response.headers["X-Model-Version"] == "2"
    assert response.get_json() == {"prediction": 0}


def test_model_listing_shows_signatures(client: FlaskClient) -> None:
    body = client.get("/models").get_json()

    names = [m["name"] for m in body["models"]]
    assert names == ["diabetes", "exploding", "iris", "linear"]
    iris = client.get("/models/iris").get_json()
    assert [v["version"] for v in iris["versions"]] == ["1", "2"]
    signature = iris["versions"][0]["signature"]
    assert signature["features"] == list(testing.IRIS_FEATURES)
    assert signature["classes"] == ["setosa", "versicolor", "virginica"]
    assert "predict_proba" in signature["methods"]
    diabetes = client.get("/models/diabetes/versions/1").get_json()
    assert diabetes["signature"]["features"][:2] == ["x0", "x1"]


def test_index_lists_models_and_links(client: FlaskClient) -> None:
    body = client.get("/").get_json()

    assert body["name"] == "flaskserve"
    assert body["default_model"] == "linear"
    assert "iris" in body["models"]


def test_health_is_live_and_ready(client: FlaskClient) -> None:
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").get_json() == {"ready": True}
    assert client.get("/readyz").status_code == 200
