"""scikit-learn's direct kernels answer exactly as the estimator does, only where that is certain,
and come with every model loaded from a scikit-learn format."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from flaskserve.app import create_app
from flaskserve.models.loaders import LoadedFile
from flaskserve.models.loaders.sklearn_kernels import _FlatForest, find_kernel
from flaskserve.runtime import get_runtime
from flaskserve.settings import Settings
from flaskserve.testing import diabetes_rows


class ShiftedRidge(Ridge):
    """A subclass that changes predict: its own code must run."""

    def predict(self, features: Any) -> Any:
        return super().predict(features) + 1.0


@pytest.fixture
def registry(make_settings: Callable[..., Settings]) -> Any:
    return get_runtime(create_app(make_settings())).registry


@pytest.mark.parametrize(
    ("name", "method"),
    [
        pytest.param("linear", "predict", id="LinearRegression fit on a DataFrame"),
        pytest.param("diabetes", "predict", id="Ridge fit on an array"),
    ],
)
def test_a_linear_kernel_answers_exactly_as_the_estimator(registry: Any, name: str, method: str) -> None:
    model = registry.resolve(name)
    kernel = find_kernel(model, method)
    rows = np.random.default_rng(3).normal(size=(50, model.signature.n_features))

    assert kernel is not None
    np.testing.assert_array_equal(kernel(rows), model.call(method, rows))


def test_a_model_loaded_from_a_skops_file_carries_its_kernel(registry: Any) -> None:
    model = registry.resolve("diabetes")
    kernel = model.kernel("predict")
    rows = np.random.default_rng(4).normal(size=(20, model.signature.n_features))

    assert kernel is not None
    np.testing.assert_array_equal(kernel(rows), model.call("predict", rows))


@pytest.mark.parametrize(
    ("platform", "carried"),
    [
        pytest.param("sklearn_skops", True, id="skops"),
        pytest.param("sklearn_joblib", True, id="joblib"),
        pytest.param("sklearn_pickle", True, id="pickle"),
        pytest.param("onnx_onnxv1", False, id="ONNX"),
        pytest.param("xgboost_ubj", False, id="XGBoost"),
        pytest.param("lightgbm_text", False, id="LightGBM"),
        pytest.param("python_class", False, id="a Python class"),
    ],
)
def test_only_scikit_learn_formats_carry_the_scikit_learn_kernels(platform: str, carried: bool) -> None:
    loaded = LoadedFile(model=Ridge(), platform=platform)

    assert (loaded.kernels is find_kernel) is carried


@pytest.mark.parametrize(
    ("name", "version", "method"),
    [
        pytest.param("iris", "2", "predict", id="a Pipeline"),
        pytest.param("iris", "1", "predict_proba", id="a classifier's probabilities"),
        pytest.param("exploding", "1", "predict", id="a model of unknown type"),
    ],
)
def test_no_kernel_for_other_models(registry: Any, name: str, version: str, method: str) -> None:
    assert find_kernel(registry.resolve(name, version), method) is None


def test_no_kernel_when_a_subclass_changes_predict(registry: Any) -> None:
    model = registry.resolve("diabetes")
    features, target = diabetes_rows(100), np.arange(100.0)
    shifted = dataclasses.replace(model, estimator=ShiftedRidge().fit(features, target))

    assert find_kernel(shifted, "predict") is None


def _forest_model(registry: Any, estimator: Any) -> Any:
    """The diabetes model's served form with another estimator in it (same ten features)."""
    return dataclasses.replace(registry.resolve("diabetes"), estimator=estimator)


@pytest.mark.parametrize(
    ("forest", "methods"),
    [
        pytest.param("RandomForestRegressor", ("predict",), id="random forest regressor"),
        pytest.param("ExtraTreesRegressor", ("predict",), id="extra trees regressor"),
        pytest.param("RandomForestClassifier", ("predict", "predict_proba"), id="random forest classifier"),
        pytest.param("ExtraTreesClassifier", ("predict", "predict_proba"), id="extra trees classifier"),
    ],
)
def test_a_forest_kernel_answers_exactly_as_the_forest(
    registry: Any, forest: str, methods: tuple[str, ...]
) -> None:
    import sklearn.ensemble

    features = diabetes_rows(200)
    target = np.arange(200.0) if forest.endswith("Regressor") else np.arange(200) % 3
    estimator = getattr(sklearn.ensemble, forest)(n_estimators=15, max_depth=6, random_state=0)
    model = _forest_model(registry, estimator.fit(features, target))
    rows = np.random.default_rng(5).normal(size=(40, 10)) * 0.05

    for method in methods:
        kernel = find_kernel(model, method)
        assert kernel is not None, method
        np.testing.assert_array_equal(kernel(rows), model.call(method, rows))


def test_no_forest_kernel_for_several_outputs(registry: Any) -> None:
    from sklearn.ensemble import RandomForestRegressor

    features = diabetes_rows(100)
    estimator = RandomForestRegressor(n_estimators=5, random_state=0).fit(
        features, np.column_stack([np.arange(100.0), np.arange(100.0) * 2])
    )

    assert find_kernel(_forest_model(registry, estimator), "predict") is None


def _fitted_forest(registry: Any, forest: str, rows: int = 200) -> Any:
    import sklearn.ensemble

    features = diabetes_rows(rows)
    target = np.arange(float(rows)) if forest.endswith("Regressor") else np.arange(rows) % 3
    estimator = getattr(sklearn.ensemble, forest)(n_estimators=12, max_depth=7, random_state=1)
    return _forest_model(registry, estimator.fit(features, target))


@pytest.mark.parametrize("rows", [1, 2, 300])
@pytest.mark.parametrize(
    ("forest", "method"),
    [
        pytest.param("RandomForestRegressor", "predict", id="regressor"),
        pytest.param("RandomForestClassifier", "predict_proba", id="classifier"),
    ],
)
def test_a_forest_kernel_answers_exactly_for_one_row_or_many(
    registry: Any, forest: str, method: str, rows: int
) -> None:
    model = _fitted_forest(registry, forest)
    kernel = find_kernel(model, method)
    matrix = np.random.default_rng(rows).normal(size=(rows, 10)) * 0.05

    assert kernel is not None
    np.testing.assert_array_equal(kernel(matrix), model.call(method, matrix))


def test_a_moderate_forest_is_walked_whole_not_asked_tree_by_tree(
    registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.tree import DecisionTreeRegressor

    model = _fitted_forest(registry, "RandomForestRegressor")
    kernel = find_kernel(model, "predict")
    matrix = np.random.default_rng(6).normal(size=(30, 10)) * 0.05
    expected = model.call("predict", matrix)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a tree was asked on its own")

    monkeypatch.setattr(DecisionTreeRegressor, "predict", refuse)

    assert kernel is not None
    np.testing.assert_array_equal(kernel(matrix), expected)


def test_a_forest_too_large_to_lay_flat_is_asked_tree_by_tree(
    registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_FlatForest, "MAX_NODES", 10)
    model = _fitted_forest(registry, "ExtraTreesRegressor")
    kernel = find_kernel(model, "predict")
    matrix = np.random.default_rng(7).normal(size=(30, 10)) * 0.05

    assert kernel is not None
    np.testing.assert_array_equal(kernel(matrix), model.call("predict", matrix))


def test_rows_with_missing_values_take_the_side_each_tree_learned(registry: Any) -> None:
    model = _fitted_forest(registry, "RandomForestClassifier")
    kernel = find_kernel(model, "predict_proba")
    matrix = np.random.default_rng(8).normal(size=(20, 10)) * 0.05
    matrix[::3, 2] = np.nan

    assert kernel is not None
    np.testing.assert_array_equal(kernel(matrix), model.call("predict_proba", matrix))
