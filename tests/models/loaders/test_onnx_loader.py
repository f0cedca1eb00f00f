"""ONNX files converted from scikit-learn answer as the original model does, through the real app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from flaskserve import testing
from flaskserve.errors import ModelLoadError
from flaskserve.models.loaders import default_loaders
from flaskserve.models.loading import load_registry
from flaskserve.settings import load_settings

IRIS_LABELS = ["setosa", "versicolor", "virginica"]


def _to_onnx(model: Any, sample: Any, path: Path, **options: Any) -> Path:
    from skl2onnx import to_onnx

    converted = to_onnx(model, sample, options={id(model): options} if options else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(converted.SerializeToString())
    return path


@pytest.fixture(scope="module")
def iris_array() -> tuple[Any, Any]:
    """Iris as a float32 array (what converters see) with string labels."""
    frame, labels = testing.iris_frame()
    return frame.to_numpy(dtype=np.float32), labels


@pytest.fixture(scope="module")
def iris_model(iris_array: tuple[Any, Any]) -> Any:
    from sklearn.linear_model import LogisticRegression

    features, labels = iris_array
    return LogisticRegression(max_iter=1000).fit(features, labels)


def _column_pipeline() -> Any:
    """A pipeline that selects iris columns by name: skl2onnx gives it one input per column."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame, labels = testing.iris_frame()
    columns = ColumnTransformer([("scale", StandardScaler(), list(testing.IRIS_FEATURES))])
    return make_pipeline(columns, LogisticRegression(max_iter=1000)).fit(frame.astype(np.float32), labels)


@pytest.fixture(scope="module")
def onnx_repository(tmp_path_factory: pytest.TempPathFactory, iris_model: Any, iris_array: Any) -> Path:
    """iris (ZipMap), iris-tensor (zipmap=False), iris-named (one input per feature) and diabetes."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    root = tmp_path_factory.mktemp("onnx")
    features = iris_array[0]
    _to_onnx(iris_model, features[:1], root / "iris" / "1" / "model.onnx")
    _to_onnx(iris_model, features[:1], root / "iris-tensor" / "1" / "model.onnx", zipmap=False)
    frame = testing.iris_frame()[0].astype(np.float32)
    _to_onnx(_column_pipeline(), frame[:1], root / "iris-named" / "1" / "model.onnx")
    diabetes_x, diabetes_y = load_diabetes(return_X_y=True)
    ridge = Ridge(alpha=0.1).fit(diabetes_x.astype(np.float32), diabetes_y)
    _to_onnx(ridge, diabetes_x[:1].astype(np.float32), root / "diabetes" / "1" / "model.onnx")
    return root


@pytest.fixture(scope="module")
def onnx_client(onnx_repository: Path) -> FlaskClient:
    from flaskserve.app import create_app

    return create_app(load_settings(None, model_path=onnx_repository)).test_client()


@pytest.mark.parametrize(
    "model",
    [
        pytest.param("iris", id="ZipMap probabilities"),
        pytest.param("iris-tensor", id="probability tensor"),
    ],
)
def test_onnx_classifier_answers_as_scikit_learn(
    onnx_client: FlaskClient, ask: Any, iris_model: Any, iris_array: Any, model: str
) -> None:
    rows = iris_array[0][::10]

    labels = ask(onnx_client, model, rows)
    probabilities = ask(onnx_client, model, rows, "predict_proba", classes=IRIS_LABELS)
    described = onnx_client.get(f"/models/{model}/versions/1").get_json()

    assert labels.tolist() == iris_model.predict(rows).tolist()
    np.testing.assert_allclose(probabilities, iris_model.predict_proba(rows), rtol=1e-4, atol=1e-6)
    assert described["platform"] == "onnx_onnxv1"
    assert described["signature"]["classes"] == IRIS_LABELS
    assert described["signature"]["features"] == ["x0", "x1", "x2", "x3"]


def test_one_input_per_feature_gives_the_feature_names(onnx_client: FlaskClient) -> None:
    frame = testing.iris_frame()[0].astype(np.float32)[::10]
    records = frame.to_dict(orient="records")

    response = onnx_client.post("/models/iris-named/predict", json={"instances": records})
    signature = onnx_client.get("/models/iris-named/versions/1").get_json()["signature"]

    assert response.status_code == 200
    assert response.get_json()["predictions"] == _column_pipeline().predict(frame).tolist()
    assert signature["features"] == list(testing.IRIS_FEATURES)


def test_onnx_regressor_answers_as_scikit_learn(onnx_client: FlaskClient, ask: Any) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    features, target = load_diabetes(return_X_y=True)
    reference = Ridge(alpha=0.1).fit(features.astype(np.float32), target)
    rows = testing.diabetes_rows(8)

    predictions = ask(onnx_client, "diabetes", rows)
    methods = onnx_client.get("/models/diabetes/versions/1").get_json()["signature"]["methods"]

    assert predictions.shape == (8,)
    np.testing.assert_allclose(predictions, reference.predict(rows.astype(np.float32)), rtol=1e-4)
    assert methods == ["predict"]


def test_a_file_that_is_not_onnx_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"not a graph")

    with pytest.raises(ModelLoadError, match="not an ONNX model"):
        load_registry(load_settings(None, model_path=path), default_loaders())
