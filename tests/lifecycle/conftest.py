"""A repository of one model a test may change, and an app that watches it.

Each version of ``linear`` answers one constant, its own number unless a test says
otherwise, so an answer tells which version served it. The tests call the
watcher's :meth:`~flaskserve.lifecycle.watcher.Watcher.look` themselves: one call
is one poll, and no test sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flaskserve import testing
from flaskserve.app import create_app
from flaskserve.lifecycle.watcher import Watcher
from flaskserve.runtime import get_runtime
from flaskserve.settings import load_settings


@pytest.fixture
def models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    testing.save_model(testing.train_constant(1.0), root / "linear" / "1" / "model.skops")
    return root


@pytest.fixture
def add_version(models: Path) -> Callable[..., Path]:
    def write(version: str, answer: float | None = None, features: tuple[str, ...] = ("x", "y")) -> Path:
        value = float(version) if answer is None else answer
        return testing.save_model(
            testing.train_constant(value, features), models / "linear" / version / "model.skops"
        )

    return write


@pytest.fixture
def watched_app(models: Path, tmp_path: Path) -> Flask:
    settings = load_settings(None, model_path=models, watch=True, keys_file=tmp_path / "keys.json")
    return create_app(settings)


@pytest.fixture
def watcher(watched_app: Flask) -> Watcher:
    watcher = get_runtime(watched_app).watcher
    watcher.look()  # the first look: every folder is new, so nothing is complete yet
    return watcher


@pytest.fixture
def client(watched_app: Flask) -> FlaskClient:
    return watched_app.test_client()
