"""Pickle runs code on load: it loads only where the operator trusted it."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from flaskserve.errors import UntrustedModel
from flaskserve.models.loaders import default_loaders
from flaskserve.models.loading import load_registry
from flaskserve.models.trust import file_sha256
from flaskserve.settings import load_settings
from flaskserve.testing import save_model


class _Payload:
    """Unpickling this touches a marker file: proof that code ran at load time."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def malicious_pickle(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(_Payload(marker)))
    return path, marker


def test_untrusted_pickle_is_refused_and_never_runs(malicious_pickle: tuple[Path, Path]) -> None:
    path, marker = malicious_pickle

    with pytest.raises(UntrustedModel) as refused:
        load_registry(load_settings(None, model_path=path), default_loaders())

    assert "--allow-pickle" in refused.value.message
    assert "flaskserve convert" in refused.value.message
    assert file_sha256(path) in refused.value.message
    assert not marker.exists()


def test_pinned_digest_trusts_one_pickle(tmp_path: Path, linear_xy: Any) -> None:
    path = save_model(linear_xy, tmp_path / "linear.joblib")

    registry = load_registry(
        load_settings(None, model_path=path, trusted_sha256=[file_sha256(path)]), default_loaders()
    )

    assert registry.names() == ["linear"]


def test_allow_pickle_trusts_the_named_path(tmp_path: Path, linear_xy: Any) -> None:
    path = save_model(linear_xy, tmp_path / "linear.pkl")

    registry = load_registry(load_settings(None, model_path=path, allow_pickle=True), default_loaders())

    assert registry.resolve("linear").platform == "sklearn_pickle"


def test_skops_with_an_untrusted_type_is_refused_until_trusted(tmp_path: Path) -> None:
    import operator

    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    features, target = load_iris(return_X_y=True)
    model = make_pipeline(FunctionTransformer(operator.neg), LogisticRegression(max_iter=500))
    path = save_model(model.fit(features, target), tmp_path / "negated.skops")

    with pytest.raises(UntrustedModel) as refused:
        load_registry(load_settings(None, model_path=path), default_loaders())
    trusted = load_registry(
        load_settings(None, model_path=path, skops_trusted_types=["_operator.neg"]),
        default_loaders(),
    )

    assert "_operator.neg" in refused.value.message
    assert trusted.names() == ["negated"]
