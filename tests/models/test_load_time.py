"""A model's load time is its own: importing its framework is timed and logged apart."""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flaskserve.models.loaders import LoadedFile, LoaderTable
from flaskserve.models.loading import load_model
from flaskserve.models.repository import ModelSource
from flaskserve.models.trust import ModelFile, TrustPolicy
from flaskserve.settings import ModelSettings
from flaskserve.testing import ExplodingRegressor

IMPORT_SECONDS = 0.4


class SlowFrameworkLoader:
    """A loader whose framework takes ``IMPORT_SECONDS`` to import, as scikit-learn takes seconds."""

    suffixes: tuple[str, ...] = (".slow",)

    def __init__(self, framework: str) -> None:
        self.frameworks = (framework,)

    def load(self, file: ModelFile, *, display_name: str, trust: TrustPolicy) -> LoadedFile:
        return LoadedFile(model=ExplodingRegressor(), platform="slow_test")


class RecordingObserver:
    def __init__(self) -> None:
        self.loaded: list[tuple[str, str, float]] = []

    def model_loaded(self, model: str, version: str, seconds: float) -> None:
        self.loaded.append((model, version, seconds))

    def model_load_failed(self, model: str, version: str) -> None:
        raise AssertionError("the model should load")


@pytest.fixture
def slow_framework(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The name of a module that takes ``IMPORT_SECONDS`` to import, in a process where a model loaded."""
    warm = tmp_path / "warm.slow"
    warm.write_bytes(b"weights")
    load_model(
        ModelSource("warm", "1", warm),
        ModelSettings(),
        LoaderTable([SlowFrameworkLoader("sys")]),
        TrustPolicy(),
    )
    name = f"slow_framework_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(f"import time\ntime.sleep({IMPORT_SECONDS})\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_import_time_is_logged_apart_and_left_out_of_the_load_time(
    tmp_path: Path, slow_framework: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "linear.slow"
    path.write_bytes(b"weights")
    loaders = LoaderTable([SlowFrameworkLoader(slow_framework)])
    observer = RecordingObserver()

    with caplog.at_level(logging.INFO, logger="flaskserve.models"):
        load_model(ModelSource("linear", "1", path), ModelSettings(), loaders, TrustPolicy(), observer)

    [(model, version, seconds)] = observer.loaded
    (logged,) = [r for r in caplog.records if r.getMessage() == "model loaded"]
    assert (model, version) == ("linear", "1")
    assert seconds < IMPORT_SECONDS
    assert logged.import_ms >= IMPORT_SECONDS * 1000  # type: ignore[attr-defined]
    assert logged.load_ms < IMPORT_SECONDS * 1000  # type: ignore[attr-defined]


def test_a_framework_imported_once_costs_nothing_the_second_time(
    tmp_path: Path, slow_framework: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "linear.slow"
    path.write_bytes(b"weights")
    loaders = LoaderTable([SlowFrameworkLoader(slow_framework)])

    with caplog.at_level(logging.INFO, logger="flaskserve.models"):
        for version in ("1", "2"):
            load_model(ModelSource("linear", version, path), ModelSettings(), loaders, TrustPolicy())

    first, second = [r for r in caplog.records if r.getMessage() == "model loaded"]
    assert first.import_ms >= IMPORT_SECONDS * 1000  # type: ignore[attr-defined]
    assert second.import_ms < 50  # type: ignore[attr-defined]
