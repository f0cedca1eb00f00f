"""Fixtures for the format tests: serve a model file through the real app, and ask it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from flaskserve.app import create_app
from flaskserve.settings import load_settings

Serve = Callable[..., FlaskClient]
Ask = Callable[..., Any]


@pytest.fixture
def serve() -> Serve:
    """Serve a model file or repository; keyword arguments are settings."""

    def build(path: Path, **settings: Any) -> FlaskClient:
        return create_app(load_settings(None, model_path=path, **settings)).test_client()

    return build


@pytest.fixture
def ask() -> Ask:
    """POST rows to ``/models/NAME/predict`` and return the predictions as an array.

    ``predict_proba`` answers (one ``{class: probability}`` map per row) come back
    as a table whose columns follow ``classes``.
    """

    def post(client: FlaskClient, model: str, rows: Any, method: str = "predict", classes: Any = None) -> Any:
        response = client.post(
            f"/models/{model}/predict", json={"instances": np.asarray(rows).tolist(), "method": method}
        )
        assert response.status_code == 200, response.get_json()
        answer = response.get_json()["predictions"]
        if classes is not None:
            return np.array([[row[str(c)] for c in classes] for row in answer])
        return np.asarray(answer)

    return post
