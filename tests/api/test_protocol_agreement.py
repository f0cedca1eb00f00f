"""Every protocol answers the same rows with the same predictions as ``POST /predict``."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from flaskserve import testing

Ask = Callable[[FlaskClient, str, list[str], list[list[float]], str], Any]


def simple(client: FlaskClient, model: str, names: list[str], rows: list[list[float]], method: str) -> Any:
    response = client.post(f"/models/{model}/versions/1/predict?method={method}", json={"instances": rows})
    assert response.status_code == 200, response.get_json()
    answers = response.get_json()["predictions"]
    if answers and isinstance(answers[0], dict):
        return [list(answer.values()) for answer in answers]
    return answers


def v2_json(client: FlaskClient, model: str, names: list[str], rows: list[list[float]], method: str) -> Any:
    body = {
        "inputs": [{"name": "input", "shape": [len(rows), len(names)], "datatype": "FP64", "data": rows}],
        "outputs": [{"name": method}],
    }
    response = client.post(f"/v2/models/{model}/versions/1/infer", json=body)
    assert response.status_code == 200, response.get_json()
    [output] = response.get_json()["outputs"]
    return np.array(output["data"], dtype=object).reshape(output["shape"]).tolist()


def v2_columns(
    client: FlaskClient, model: str, names: list[str], rows: list[list[float]], method: str
) -> Any:
    inputs = [
        {"name": name, "shape": [len(rows)], "datatype": "FP32", "data": [row[i] for row in rows]}
        for i, name in enumerate(names)
    ]
    body = {"inputs": inputs, "outputs": [{"name": method}], "parameters": {"content_type": "pd"}}
    response = client.post(f"/v2/models/{model}/versions/1/infer", json=body)
    assert response.status_code == 200, response.get_json()
    [output] = response.get_json()["outputs"]
    return np.array(output["data"], dtype=object).reshape(output["shape"]).tolist()


def v1_instances(
    client: FlaskClient, model: str, names: list[str], rows: list[list[float]], method: str
) -> Any:
    body = {"instances": [dict(zip(names, row, strict=True)) for row in rows], "signature_name": method}
    response = client.post(f"/v1/models/{model}/versions/1:predict", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["predictions"]


def v1_inputs(client: FlaskClient, model: str, names: list[str], rows: list[list[float]], method: str) -> Any:
    columns = {name: [row[i] for row in rows] for i, name in enumerate(names)}
    response = client.post(
        f"/v1/models/{model}/versions/1:predict", json={"inputs": columns, "signature_name": method}
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["outputs"]


def _invoke(client: FlaskClient, model: str, method: str, **kwargs: Any) -> Any:
    response = client.post("/invocations", headers={"X-Model-Name": model, "X-Model-Version": "1"}, **kwargs)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["predictions"]


def mlflow_split(
    client: FlaskClient, model: str, names: list[str], rows: list[list[float]], method: str
) -> Any:
    body = {"dataframe_split": {"columns": names, "data": rows}, "params": {"method": method}}
    return _invoke(client, model, method, json=body)


def mlflow_records(
    client: FlaskClient, model: str, names: list[str], rows: list[list[float]], method: str
) -> Any:
    body = {
        "dataframe_records": [dict(zip(names, row, strict=True)) for row in rows],
        "params": {"method": method},
    }
    return _invoke(client, model, method, json=body)


def mlflow_instances(
    client: FlaskClient, model: str, names: list[str], rows: list[list[float]], method: str
) -> Any:
    return _invoke(client, model, method, json={"instances": rows, "params": {"method": method}})


def mlflow_inputs(
    client: FlaskClient, model: str, names: list[str], rows: list[list[float]], method: str
) -> Any:
    columns = {name: [row[i] for row in rows] for i, name in enumerate(names)}
    return _invoke(client, model, method, json={"inputs": columns, "params": {"method": method}})


def mlflow_csv(
    client: FlaskClient, model: str, names: list[str], rows: list[list[float]], method: str
) -> Any:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(list(reversed(names)))
    writer.writerows([list(reversed(row)) for row in rows])
    return _invoke(client, model, method, data=text.getvalue(), content_type="text/csv; charset=utf-8")


PROTOCOLS = [
    pytest.param(v2_json, id="v2 json"),
    pytest.param(v2_columns, id="v2 columns (pd)"),
    pytest.param(v1_instances, id="v1 instances"),
    pytest.param(v1_inputs, id="v1 inputs"),
    pytest.param(mlflow_split, id="mlflow dataframe_split"),
    pytest.param(mlflow_records, id="mlflow dataframe_records"),
    pytest.param(mlflow_instances, id="mlflow instances"),
    pytest.param(mlflow_inputs, id="mlflow inputs"),
    pytest.param(mlflow_csv, id="mlflow csv"),
]


def _as_sent_in_fp32(rows: list[list[float]]) -> list[list[float]]:
    """The rows as the server sees them when sent as FP32, to compare like with like."""
    rounded: list[list[float]] = np.asarray(rows, dtype=np.float32).astype(np.float64).tolist()
    return rounded


def _frame(rows: list[list[float]]) -> Any:
    import pandas as pd

    return pd.DataFrame(rows, columns=list(testing.IRIS_FEATURES))


def _check(actual: Any, expected: Any) -> None:
    if np.asarray(expected).dtype.kind in "fc":
        np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=1e-6)
    else:
        assert actual == expected


@pytest.mark.parametrize("ask", PROTOCOLS)
def test_regressor_answers_agree_with_predict(client: FlaskClient, diabetes_regressor: Any, ask: Ask) -> None:
    rows = testing.diabetes_rows(4).tolist()
    names = [f"x{i}" for i in range(10)]
    if ask is v2_columns:
        rows = _as_sent_in_fp32(rows)

    answer = ask(client, "diabetes", names, rows, "predict")

    _check(answer, diabetes_regressor.predict(np.asarray(rows)))
    _check(answer, simple(client, "diabetes", names, rows, "predict"))


# A CSV body cannot name a method: it always gets the model's default one.
CLASSIFIER_CASES = [
    pytest.param(case.values[0], method, id=f"{case.id}, {method}")
    for case in PROTOCOLS
    for method in ("predict", "predict_proba")
    if not (case.values[0] is mlflow_csv and method != "predict")
]


@pytest.mark.parametrize(("ask", "method"), CLASSIFIER_CASES)
def test_classifier_answers_agree_with_predict(
    client: FlaskClient, iris_classifier: Any, ask: Ask, method: str
) -> None:
    frame, _ = testing.iris_frame()
    rows = frame.iloc[[0, 60, 120]].to_numpy().tolist()
    names = list(testing.IRIS_FEATURES)
    if ask is v2_columns:
        rows = _as_sent_in_fp32(rows)

    answer = ask(client, "iris", names, rows, method)

    expected = getattr(iris_classifier, method)(_frame(rows))
    _check(answer, expected.tolist() if method == "predict" else expected)
    _check(answer, simple(client, "iris", names, rows, method))
