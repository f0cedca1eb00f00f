"""``POST /models/{name}/explain`` and V1 ``:explain``: the contract the playground reads, over HTTP.

Each answer has one explanation per row, in order; each explanation's base value
plus its contributions is its value to 1e-6, the value is the model's own output
for the predicted class, and that class is what ``/predict`` answers. Explaining
goes through the prediction path: refusals are the same 400s, the cache and the
metrics see the ``explain`` method.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from flaskserve import testing
from flaskserve.app import create_app
from flaskserve.settings import load_settings

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.2, 5.0, 1.5], [6.7, 3.0, 5.2, 2.3]]


@pytest.fixture(scope="module")
def forest() -> Any:
    from sklearn.ensemble import RandomForestClassifier

    frame, labels = testing.iris_frame()
    return RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(frame, labels)


@pytest.fixture(scope="module")
def explain_repository(
    tmp_path_factory: pytest.TempPathFactory, forest: Any, iris_classifier: Any, diabetes_regressor: Any
) -> Path:
    return testing.write_repository(
        tmp_path_factory.mktemp("explain-repository"),
        {
            "forest": {"1": (forest, ".skops")},
            "iris": {"1": (iris_classifier, ".skops")},
            "diabetes": {"1": (diabetes_regressor, ".skops")},
            "exploding": {"1": (testing.ExplodingRegressor(), ".joblib")},
        },
    )


@pytest.fixture(scope="module")
def explain_client(explain_repository: Path) -> FlaskClient:
    settings = load_settings(
        None, model_path=explain_repository, allow_pickle=True, default_model="iris", cache_size=100
    )
    return create_app(settings).test_client()


def _additive(entry: dict[str, Any]) -> float:
    return float(entry["base_value"] + sum(entry["contributions"].values()) - entry["value"])


def test_a_forest_is_explained_with_tree_shap_per_row_in_order(
    explain_client: FlaskClient, forest: Any
) -> None:
    answer = explain_client.post("/models/forest/explain", json={"instances": ROWS})

    assert answer.status_code == 200
    body = answer.get_json()
    assert {k: body[k] for k in ("model_name", "model_version", "explainer", "scale")} == {
        "model_name": "forest",
        "model_version": "1",
        "explainer": "tree_shap",
        "scale": "probability",
    }
    predicted = explain_client.post("/models/forest/predict", json={"instances": ROWS}).get_json()
    probabilities = forest.predict_proba(np.array(ROWS))
    assert [e["output"] for e in body["explanations"]] == predicted["predictions"]
    for entry, row in zip(body["explanations"], probabilities, strict=True):
        assert list(entry["contributions"]) == list(testing.IRIS_FEATURES)
        assert abs(_additive(entry)) <= 1e-6
        assert entry["value"] == pytest.approx(row[list(forest.classes_).index(entry["output"])], abs=1e-9)


def test_a_logistic_regression_is_explained_linearly_on_its_class_scores(
    explain_client: FlaskClient, iris_classifier: Any
) -> None:
    body = explain_client.post(
        "/models/iris/versions/1/explain", json=[dict(zip(testing.IRIS_FEATURES, ROWS[1], strict=True))]
    ).get_json()

    (entry,) = body["explanations"]
    assert (body["explainer"], body["scale"]) == ("linear", "raw")
    scores = iris_classifier.decision_function(np.array(ROWS[1:2]))[0]
    assert entry["output"] == iris_classifier.predict(np.array(ROWS[1:2]))[0]
    assert entry["value"] == pytest.approx(scores[list(iris_classifier.classes_).index(entry["output"])])
    assert abs(_additive(entry)) <= 1e-6


def test_a_regressor_explains_its_value_under_made_up_feature_names(explain_client: FlaskClient) -> None:
    rows = testing.diabetes_rows(2).tolist()
    body = explain_client.post("/models/diabetes/explain", json={"instances": rows}).get_json()
    predicted = explain_client.post("/models/diabetes/predict", json={"instances": rows}).get_json()

    assert [e["output"] for e in body["explanations"]] == ["value", "value"]
    assert list(body["explanations"][0]["contributions"]) == [f"x{i}" for i in range(10)]
    for entry, value in zip(body["explanations"], predicted["predictions"], strict=True):
        assert entry["value"] == pytest.approx(value)
        assert abs(_additive(entry)) <= 1e-6


def test_kserve_v1_explain_answers_predictions_beside_explanations(explain_client: FlaskClient) -> None:
    answer = explain_client.post("/v1/models/forest:explain", json={"instances": ROWS})
    predicted = explain_client.post("/v1/models/forest:predict", json={"instances": ROWS}).get_json()

    assert answer.status_code == 200
    body = answer.get_json()
    assert body["predictions"] == predicted["predictions"]
    assert [e["output"] for e in body["explanations"]] == predicted["predictions"]
    assert (body["explainer"], body["scale"]) == ("tree_shap", "probability")


def test_a_model_that_cannot_be_explained_is_a_400_naming_what_can(explain_client: FlaskClient) -> None:
    answer = explain_client.post("/models/exploding/explain", json={"instances": [[1, 2]]})

    assert answer.status_code == 400
    body = answer.get_json()
    assert body["code"] == "explain_unsupported"
    assert "ExplodingRegressor" in body["error"]
    assert "random forests" in body["error"]


def test_the_model_description_says_whether_it_can_be_explained(explain_client: FlaskClient) -> None:
    assert explain_client.get("/models/forest").get_json()["explainable"] is True
    assert explain_client.get("/models/exploding").get_json()["explainable"] is False


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"instances": [[1, 2]]}, id="too few values"),
        pytest.param({"instances": [{"sepal_length": 1}]}, id="a missing feature"),
        pytest.param({"instances": [["a", 1, 2, 3]]}, id="a string for a number"),
        pytest.param([1, 2], id="rows that are not rows"),
    ],
)
def test_invalid_rows_are_refused_exactly_as_predict_refuses_them(
    explain_client: FlaskClient, body: Any
) -> None:
    explained = explain_client.post("/models/forest/explain", json=body)
    predicted = explain_client.post("/models/forest/predict", json=body)

    assert explained.status_code == predicted.status_code == 400
    assert explained.get_json() == predicted.get_json()


def test_explanations_are_cached_and_counted_as_the_explain_method(explain_client: FlaskClient) -> None:
    body = {"instances": [[4.4, 2.9, 1.4, 0.2]]}
    first = explain_client.post("/models/forest/explain", json=body)
    again = explain_client.post("/models/forest/explain", json=body)

    assert (first.headers["X-Cache"], again.headers["X-Cache"]) == ("MISS", "HIT")
    assert again.get_json() == first.get_json()
    metrics = explain_client.get("/metrics").get_data(as_text=True)
    assert 'method="explain",model="forest"' in metrics


def test_explain_is_not_a_method_of_the_predict_routes(explain_client: FlaskClient) -> None:
    answer = explain_client.post("/models/forest/predict?method=explain", json={"instances": ROWS})

    assert answer.status_code == 400
    assert answer.get_json()["code"] == "unsupported_method"


def test_concurrent_explanations_are_batched_and_each_gets_its_own_rows(explain_repository: Path) -> None:
    settings = load_settings(
        None, model_path=explain_repository, allow_pickle=True, max_batch_size=16, max_batch_delay_ms=100
    )
    app = create_app(settings)
    answers: dict[int, Any] = {}

    def explain(index: int) -> None:
        body = {"instances": [ROWS[index]]}
        answers[index] = app.test_client().post("/models/forest/explain", json=body).get_json()

    threads = [threading.Thread(target=explain, args=(index,)) for index in range(len(ROWS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    alone = app.test_client().post("/models/forest/explain", json={"instances": ROWS}).get_json()
    # Equal up to float rounding: a row's contributions are summed in the order of the batch it shared.
    assert _same_numbers([answers[i]["explanations"][0] for i in range(len(ROWS))], alone["explanations"])
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'flaskserve_batch_rows_count{model="forest",version="1"}' in metrics


def _same_numbers(left: Any, right: Any) -> bool:
    """Whether two JSON documents are equal, their floats compared to 1e-9."""
    if isinstance(left, float) or isinstance(right, float):
        return (
            isinstance(left, (int, float))
            and isinstance(right, (int, float))
            and math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-12)
        )
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_same_numbers(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_same_numbers(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)
