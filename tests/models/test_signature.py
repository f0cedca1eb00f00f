"""Signatures read off estimators, and the matrices built against them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from flaskserve.errors import InvalidValue, ModelLoadError, WrongFeatureCount
from flaskserve.models.signature import infer_signature
from flaskserve.testing import IRIS_FEATURES


def test_classifier_signature_has_names_classes_and_methods(iris_classifier: Any) -> None:
    signature = infer_signature(iris_classifier)

    assert signature.feature_names == IRIS_FEATURES
    assert signature.classes == ("setosa", "versicolor", "virginica")
    assert {"predict", "predict_proba", "predict_log_proba", "decision_function"} <= set(signature.methods)


def test_pipeline_signature_comes_from_its_first_step(iris_pipeline: Any) -> None:
    signature = infer_signature(iris_pipeline)

    assert signature.feature_names == IRIS_FEATURES
    assert signature.classes == (0, 1, 2)


def test_array_fit_model_gets_generated_names_or_named_ones(diabetes_regressor: Any) -> None:
    generated = infer_signature(diabetes_regressor)
    named = infer_signature(diabetes_regressor, feature_names=[f"f{i}" for i in range(10)])

    assert generated.feature_names[:3] == ("x0", "x1", "x2")
    assert not generated.names_given
    assert named.feature_names[0] == "f0"
    assert generated.classes is None


def test_settings_naming_the_wrong_number_of_features_fail_at_load(diabetes_regressor: Any) -> None:
    with pytest.raises(ModelLoadError, match="name 2 features but the model was fit on 10"):
        infer_signature(diabetes_regressor, feature_names=["a", "b"])


def test_object_without_prediction_methods_cannot_be_served() -> None:
    with pytest.raises(ModelLoadError, match="none of the methods"):
        infer_signature(object())


def test_records_in_any_key_order_build_the_same_matrix(linear_xy: Any) -> None:
    signature = infer_signature(linear_xy)

    matrix = signature.matrix_from_records([{"y": 2, "x": 1}, {"x": 3.5, "y": 4}])

    np.testing.assert_array_equal(matrix, [[1, 2], [3.5, 4]])
    assert matrix.dtype == np.float64


def test_columns_and_arrays_are_checked_like_rows(linear_xy: Any) -> None:
    signature = infer_signature(linear_xy)

    from_columns = signature.matrix_from_columns({"x": [1, 3], "y": [2, 4]})
    from_array = signature.matrix_from_rows(np.array([[1, 2], [3, 4]], dtype=np.int32))

    np.testing.assert_array_equal(from_columns, from_array)
    with pytest.raises(WrongFeatureCount):
        signature.matrix_from_rows(np.zeros((2, 3)))
    with pytest.raises(InvalidValue, match="finite"):
        signature.matrix_from_rows(np.array([[1.0, np.inf]]))


def test_missing_values_pass_as_nan_only_when_allowed(linear_xy: Any) -> None:
    strict = infer_signature(linear_xy)
    lenient = infer_signature(linear_xy, allow_missing=True)

    with pytest.raises(InvalidValue, match="null"):
        strict.matrix_from_records([{"x": None, "y": 1}])
    assert np.isnan(lenient.matrix_from_records([{"x": None, "y": 1}])[0, 0])
