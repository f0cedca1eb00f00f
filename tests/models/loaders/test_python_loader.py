"""A model written as a Python class: custom processing around an inner model, trusted like code."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from flaskserve import testing
from flaskserve.errors import ModelLoadError, UntrustedModel
from flaskserve.models.loaders import default_loaders
from flaskserve.models.loading import load_registry
from flaskserve.models.trust import file_sha256
from flaskserve.settings import load_settings

#: Takes diabetes features in percent and answers the wrapped regressor's prediction, rounded.
SCALING_MODEL = """
from pathlib import Path

import numpy as np
import skops.io as sio


class Model:
    n_features_in_ = 10

    def load(self, directory: Path) -> None:
        self.inner = sio.load(directory / "weights.skops")

    def predict(self, features):
        return np.round(self.inner.predict(features / 100.0), 3)
"""

FAILING_MODEL = """
import numpy as np


class Model:
    feature_names_in_ = ["x", "y"]

    def predict(self, features):
        if (features[:, 0] < 0).any():
            raise ValueError("the secret internals of the model")
        return features.sum(axis=1)
"""


def _write(folder: Path, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


@pytest.fixture
def scaling_repository(tmp_path: Path, diabetes_regressor: Any) -> Path:
    """``scaled/1/`` holds model.py and the skops file it wraps: one model, not two."""
    version = tmp_path / "repo" / "scaled" / "1"
    _write(version, SCALING_MODEL)
    testing.save_model(diabetes_regressor, version / "weights.skops")
    return tmp_path / "repo"


def test_class_wraps_the_model_beside_it_and_transforms_its_input(
    scaling_repository: Path, serve: Any, ask: Any, diabetes_regressor: Any
) -> None:
    rows = testing.diabetes_rows(5)

    client: FlaskClient = serve(scaling_repository, allow_code=True)
    described = client.get("/models/scaled/versions/1").get_json()

    expected = np.round(diabetes_regressor.predict(rows), 3)
    np.testing.assert_allclose(ask(client, "scaled", rows * 100.0), expected)
    assert described["platform"] == "python_class"
    assert described["signature"]["features"][:2] == ["x0", "x1"]
    assert [m["name"] for m in client.get("/models").get_json()["models"]] == ["scaled"]


def test_untrusted_python_file_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = _write(tmp_path / "model", f"from pathlib import Path\nPath({str(marker)!r}).touch()\n")

    # Trusting pickles is a different decision: it does not trust code.
    with pytest.raises(UntrustedModel) as refused:
        load_registry(load_settings(None, model_path=path, allow_pickle=True), default_loaders())

    assert "--allow-code" in refused.value.message
    assert file_sha256(path) in refused.value.message
    assert not marker.exists()


def test_pinned_digest_trusts_one_python_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "sum", FAILING_MODEL)

    registry = load_registry(
        load_settings(None, model_path=path, trusted_sha256=[file_sha256(path)]), default_loaders()
    )

    assert registry.resolve("sum").signature.feature_names == ("x", "y")


def test_a_failing_class_is_a_500_with_an_error_id_and_the_server_goes_on(tmp_path: Path, serve: Any) -> None:
    path = _write(tmp_path / "sum", FAILING_MODEL)
    client: FlaskClient = serve(path, allow_code=True, model_name="sum")

    failed = client.post("/models/sum/predict", json={"x": -1, "y": 2})
    after = client.post("/models/sum/predict", json={"x": 1, "y": 2})

    assert failed.status_code == 500
    body = failed.get_json()
    assert body["code"] == "prediction_failed"
    assert failed.headers["X-Error-Id"] in body["error"]
    assert "secret" not in body["error"]
    assert after.status_code == 200
    assert after.get_json() == {"prediction": 3.0}


@pytest.mark.parametrize(
    ("source", "served"),
    [
        pytest.param(
            "class Helper:\n    def predict(self, x): return x\n\n"
            "class Model:\n    n_features_in_ = 1\n    def predict(self, x): return x[:, 0] * 2\n",
            2.0,
            id="the class named Model wins",
        ),
        pytest.param(
            "import numpy\n\n"
            "class Doubler:\n    n_features_in_ = 1\n    def predict(self, x): return x[:, 0] * 2\n",
            2.0,
            id="the only class with predict",
        ),
    ],
)
def test_the_served_class_is_found_by_convention(tmp_path: Path, source: str, served: float) -> None:
    path = _write(tmp_path / "m", source)

    model = load_registry(load_settings(None, model_path=path, allow_code=True), default_loaders()).resolve(
        "m"
    )

    assert model.call("predict", np.ones((1, 1))).tolist() == [served]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param(
            "class A:\n    def predict(self, x): ...\n\nclass B:\n    def predict(self, x): ...\n",
            r"found 2 \(A, B\)",
            id="two candidate classes",
        ),
        pytest.param("VALUE = 1\n", "found 0", id="no class"),
        pytest.param(
            "raise RuntimeError('boom')\n", "failed while importing: RuntimeError", id="import fails"
        ),
        pytest.param(
            "class Model:\n    def load(self, directory):\n        raise FileNotFoundError(directory)\n"
            "    def predict(self, x): ...\n",
            "Model failed while loading: FileNotFoundError",
            id="load hook fails",
        ),
    ],
)
def test_a_python_file_that_cannot_be_served_says_why(tmp_path: Path, source: str, message: str) -> None:
    path = _write(tmp_path / "m", source)

    with pytest.raises(ModelLoadError, match=message) as failed:
        load_registry(load_settings(None, model_path=path, allow_code=True), default_loaders())

    assert str(tmp_path) not in failed.value.message
