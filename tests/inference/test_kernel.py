"""Direct kernels answer exactly as the estimator does, and only where that is certain."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from flaskserve.app import create_app
from flaskserve.inference.kernel import find_kernel
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
