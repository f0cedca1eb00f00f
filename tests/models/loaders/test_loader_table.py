"""Which loader a file gets: by its ending, the longest registered one, with install hints for extras."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from flaskserve.errors import ModelLoadError
from flaskserve.models.loaders import default_loaders
from flaskserve.models.loading import load_registry
from flaskserve.models.repository import scan
from flaskserve.settings import load_settings
from flaskserve.testing import save_model


@pytest.mark.parametrize(
    ("name", "loader"),
    [
        pytest.param("model.skops", "SkopsLoader", id="skops"),
        pytest.param("model.JOBLIB", "PickleLoader", id="suffixes ignore case"),
        pytest.param("model.onnx", "OnnxLoader", id="onnx"),
        pytest.param("model.ubj", "XGBoostLoader", id="xgboost ubjson"),
        pytest.param("model.xgb.json", "XGBoostLoader", id="xgboost json"),
        pytest.param("model.lgb", "LightGBMLoader", id="lightgbm"),
        pytest.param("model.lgb.txt", "LightGBMLoader", id="lightgbm text"),
        pytest.param("model.py", "PythonLoader", id="python class"),
    ],
)
def test_file_ending_picks_the_loader(name: str, loader: str) -> None:
    assert type(default_loaders().for_path(Path(name))).__name__ == loader


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("model.json", id="generic json"),
        pytest.param("model.txt", id="generic text"),
        pytest.param("model-settings.toml", id="settings file"),
        pytest.param(".skops", id="hidden file"),
    ],
)
def test_generic_endings_are_not_models(name: str) -> None:
    loaders = default_loaders()

    assert not loaders.handles(Path(name))
    with pytest.raises(ModelLoadError, match="supported file endings"):
        loaders.for_path(Path(name))


def test_a_single_file_is_named_without_its_whole_ending(tmp_path: Path) -> None:
    path = tmp_path / "churn.xgb.json"
    path.write_text("{}")

    [source] = scan(path, default_loaders())

    assert source.name == "churn"


def test_generic_files_beside_a_model_are_ignored(tmp_path: Path, linear_xy: Any) -> None:
    save_model(linear_xy, tmp_path / "linear" / "1" / "model.skops")
    (tmp_path / "linear" / "1" / "metrics.json").write_text("{}")
    (tmp_path / "linear" / "1" / "notes.txt").write_text("trained on Tuesday")

    [source] = scan(tmp_path, default_loaders())

    assert source.path.name == "model.skops"


@pytest.mark.parametrize(
    ("file_name", "module", "extra"),
    [
        pytest.param("model.onnx", "onnxruntime", "onnx", id="onnx"),
        pytest.param("model.ubj", "xgboost", "xgboost", id="xgboost"),
        pytest.param("model.lgb.txt", "lightgbm", "lightgbm", id="lightgbm"),
    ],
)
def test_a_missing_framework_fails_with_its_install_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_name: str, module: str, extra: str
) -> None:
    path = tmp_path / file_name
    path.write_bytes(b"\x00")
    # A None entry in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, module, None)

    with pytest.raises(ModelLoadError) as failed:
        load_registry(load_settings(None, model_path=path), default_loaders())

    assert f"pip install 'flaskserve[{extra}]'" in failed.value.message
