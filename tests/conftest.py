"""Fixtures shared by the whole suite: models trained once, then settings → app → client."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flaskserve import testing
from flaskserve.app import create_app
from flaskserve.settings import Settings, load_settings


@pytest.fixture(scope="session")
def iris_classifier() -> Any:
    return testing.train_iris_classifier()


@pytest.fixture(scope="session")
def iris_pipeline() -> Any:
    return testing.train_iris_pipeline()


@pytest.fixture(scope="session")
def diabetes_regressor() -> Any:
    return testing.train_diabetes_regressor()


@pytest.fixture(scope="session")
def linear_xy() -> Any:
    return testing.train_linear_xy()


@pytest.fixture(scope="session")
def repository(
    tmp_path_factory: pytest.TempPathFactory,
    iris_classifier: Any,
    iris_pipeline: Any,
    diabetes_regressor: Any,
    linear_xy: Any,
) -> Path:
    """A repository of four models; iris has two versions (v2 is the pipeline with integer classes)."""
    return testing.write_repository(
        tmp_path_factory.mktemp("repository"),
        {
            "iris": {"1": (iris_classifier, ".skops"), "2": (iris_pipeline, ".skops")},
            "diabetes": {"1": (diabetes_regressor, ".skops")},
            "linear": {"1": (linear_xy, ".skops")},
            "exploding": {"1": (testing.ExplodingRegressor(), ".joblib")},
        },
    )


@pytest.fixture
def make_settings(repository: Path) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"model_path": repository, "allow_pickle": True, "default_model": "linear"}
        values.update(overrides)
        return load_settings(None, **values)

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
