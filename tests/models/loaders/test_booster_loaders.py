"""XGBoost and LightGBM native files load without trust and answer as the library does."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flaskserve import testing
from flaskserve.errors import ModelLoadError
from flaskserve.models.loaders import default_loaders
from flaskserve.models.loading import load_registry
from flaskserve.models.served import ServedModel
from flaskserve.settings import load_settings


@pytest.fixture(scope="module")
def iris() -> tuple[Any, Any]:
    """Iris features by name, and the classes as 0..2."""
    frame, labels = testing.iris_frame()
    return frame, np.unique(labels, return_inverse=True)[1]


@pytest.fixture(scope="module")
def diabetes() -> tuple[Any, Any]:
    from sklearn.datasets import load_diabetes

    return load_diabetes(return_X_y=True)


def _xgboost(params: dict[str, Any], features: Any, target: Any, path: Path) -> Any:
    import xgboost as xgb

    booster = xgb.train({**params, "nthread": 1}, xgb.DMatrix(features, target), num_boost_round=5)
    path.parent.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(path))
    return booster


def _lightgbm(params: dict[str, Any], features: Any, target: Any, path: Path) -> Any:
    import lightgbm as lgb

    train = lgb.Dataset(features, target)
    booster = lgb.train({**params, "verbose": -1, "num_threads": 1}, train, num_boost_round=5)
    path.parent.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(path))
    return booster


@pytest.mark.parametrize(
    ("objective", "suffix", "platform"),
    [
        pytest.param("multi:softprob", ".ubj", "xgboost_ubj", id="xgboost softprob ubj"),
        pytest.param("multi:softmax", ".xgb.json", "xgboost_json", id="xgboost softmax json"),
    ],
)
def test_xgboost_classifier_answers_as_the_booster(
    tmp_path: Path, serve: Any, ask: Any, iris: Any, objective: str, suffix: str, platform: str
) -> None:
    import xgboost as xgb

    frame, target = iris
    reference = _xgboost({"objective": objective, "num_class": 3}, frame, target, tmp_path / f"iris{suffix}")
    reference.set_param({"objective": "multi:softprob"})  # the reference answers probabilities
    rows = frame.to_numpy()[::10]
    expected = reference.predict(xgb.DMatrix(rows, feature_names=list(frame.columns)))

    client = serve(tmp_path / f"iris{suffix}")
    described = client.get("/models/iris/versions/1").get_json()

    assert ask(client, "iris", rows).tolist() == expected.argmax(axis=1).tolist()
    np.testing.assert_allclose(
        ask(client, "iris", rows, "predict_proba", classes=[0, 1, 2]), expected, rtol=1e-5, atol=1e-6
    )
    assert described["platform"] == platform
    assert described["signature"]["features"] == list(testing.IRIS_FEATURES)
    assert described["signature"]["classes"] == [0, 1, 2]


def test_xgboost_binary_classifier_has_two_probability_columns(
    tmp_path: Path, serve: Any, ask: Any, iris: Any
) -> None:
    frame, target = iris
    is_setosa = (target == 0).astype(int)
    booster = _xgboost({"objective": "binary:logistic"}, frame.to_numpy(), is_setosa, tmp_path / "m.ubj")
    rows = frame.to_numpy()[::10]
    positive = booster.inplace_predict(rows)

    client = serve(tmp_path / "m.ubj")

    np.testing.assert_allclose(
        ask(client, "m", rows, "predict_proba", classes=[0, 1]),
        np.column_stack([1 - positive, positive]),
        rtol=1e-6,
    )
    assert ask(client, "m", rows).tolist() == (positive > 0.5).astype(int).tolist()


def test_xgboost_regressor_answers_as_the_booster(
    tmp_path: Path, serve: Any, ask: Any, diabetes: Any
) -> None:
    features, target = diabetes
    booster = _xgboost({"objective": "reg:squarederror"}, features, target, tmp_path / "d.ubj")
    rows = features[:8]

    client = serve(tmp_path / "d.ubj")
    signature = client.get("/models/d/versions/1").get_json()["signature"]

    np.testing.assert_allclose(ask(client, "d", rows), booster.inplace_predict(rows), rtol=1e-6)
    assert signature["methods"] == ["predict"]
    assert signature["features"][:2] == ["x0", "x1"]


def test_a_pickled_xgboost_regressor_serves_through_joblib(
    tmp_path: Path, serve: Any, ask: Any, diabetes: Any
) -> None:
    from xgboost import XGBRegressor

    features, target = diabetes
    model = XGBRegressor(n_estimators=5, n_jobs=1).fit(features, target)
    path = testing.save_model(model, tmp_path / "reg.joblib")

    client = serve(path, allow_pickle=True)

    np.testing.assert_allclose(ask(client, "reg", features[:8]), model.predict(features[:8]), rtol=1e-6)


@pytest.mark.parametrize(
    ("objective", "n_classes"),
    [
        pytest.param("multiclass", 3, id="multiclass"),
        pytest.param("binary", 2, id="binary"),
    ],
)
def test_lightgbm_classifier_answers_as_the_booster(
    tmp_path: Path, serve: Any, ask: Any, iris: Any, objective: str, n_classes: int
) -> None:
    frame, target = iris
    target = target if n_classes == 3 else (target == 2).astype(int)
    params = {"objective": objective, **({"num_class": 3} if n_classes == 3 else {})}
    booster = _lightgbm(params, frame, target, tmp_path / "iris.lgb.txt")
    rows = frame.to_numpy()[::10]
    expected = booster.predict(rows)
    expected = expected if expected.ndim == 2 else np.column_stack([1 - expected, expected])

    client = serve(tmp_path / "iris.lgb.txt")
    described = client.get("/models/iris/versions/1").get_json()

    classes = list(range(n_classes))
    np.testing.assert_allclose(ask(client, "iris", rows, "predict_proba", classes=classes), expected)
    assert ask(client, "iris", rows).tolist() == expected.argmax(axis=1).tolist()
    assert described["platform"] == "lightgbm_text"
    assert described["signature"]["features"] == list(testing.IRIS_FEATURES)
    assert described["signature"]["classes"] == classes


def test_lightgbm_regressor_fit_on_an_array_is_served_as_x0_to_xn(
    tmp_path: Path, serve: Any, ask: Any, diabetes: Any
) -> None:
    features, target = diabetes
    booster = _lightgbm({"objective": "regression"}, features, target, tmp_path / "d.lgb")
    rows = features[:8]

    client = serve(tmp_path / "d.lgb")
    signature = client.get("/models/d/versions/1").get_json()["signature"]

    np.testing.assert_allclose(ask(client, "d", rows), booster.predict(rows))
    assert signature["features"][:2] == ["x0", "x1"]
    assert signature["methods"] == ["predict"]


def _predicts_in_a_forked_worker(model: ServedModel, rows: Any) -> bool:
    """Fork as gunicorn does after loading, and call the model in the child; False if it hangs."""
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a multi-threaded process may deadlock: that is the point.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            model.call("predict", rows)
        finally:
            os._exit(0)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) == 0
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return False


@pytest.mark.parametrize("suffix", [pytest.param(".ubj", id="xgboost"), pytest.param(".lgb", id="lightgbm")])
def test_booster_still_predicts_in_workers_forked_after_loading(
    tmp_path: Path, iris: Any, suffix: str
) -> None:
    frame, target = iris
    path = tmp_path / f"iris{suffix}"
    if suffix == ".ubj":
        _xgboost({"objective": "multi:softprob", "num_class": 3}, frame, target, path)
    else:
        _lightgbm({"objective": "multiclass", "num_class": 3}, frame, target, path)
    model = load_registry(load_settings(None, model_path=path), default_loaders()).resolve("iris")
    rows = np.tile(frame.to_numpy(), (50, 1))
    model.call("predict", rows)  # the parent has predicted on many rows before the fork

    assert _predicts_in_a_forked_worker(model, rows)


# -- model.bst, as KServe's XGBoost and LightGBM servers name their boosters -----------------


@pytest.mark.parametrize(
    ("saved_as", "platform"),
    [
        pytest.param("model.bst", "xgboost_ubj", id="UBJSON, as XGBoost writes .bst"),
        pytest.param("model.json", "xgboost_json", id="JSON renamed to .bst"),
    ],
)
def test_an_xgboost_model_bst_is_read_by_its_content(
    tmp_path: Path, serve: Any, ask: Any, iris: Any, saved_as: str, platform: str
) -> None:
    frame, target = iris
    is_setosa = (target == 0).astype(int)
    with warnings.catch_warnings():  # XGBoost says which format an unknown suffix gets
        warnings.simplefilter("ignore", UserWarning)
        booster = _xgboost({"objective": "binary:logistic"}, frame, is_setosa, tmp_path / "saved" / saved_as)
    mounted = tmp_path / "mnt-models"
    mounted.mkdir()
    (tmp_path / "saved" / saved_as).rename(mounted / "model.bst")
    rows = frame.to_numpy()[::10]

    client = serve(mounted, model_name="iris")
    described = client.get("/models/iris/versions/1").get_json()

    assert described["platform"] == platform
    assert described["signature"]["features"] == list(testing.IRIS_FEATURES)
    assert ask(client, "iris", rows).tolist() == (booster.inplace_predict(rows) > 0.5).astype(int).tolist()


def test_a_lightgbm_model_bst_is_read_by_its_content(
    tmp_path: Path, serve: Any, ask: Any, diabetes: Any
) -> None:
    features, target = diabetes
    booster = _lightgbm({"objective": "regression"}, features, target, tmp_path / "model.bst")

    client = serve(tmp_path / "model.bst", model_name="d")

    assert client.get("/models/d/versions/1").get_json()["platform"] == "lightgbm_text"
    np.testing.assert_allclose(ask(client, "d", features[:8]), booster.predict(features[:8]))


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"\x00\x00\x00?\x04\x00\x00\x00binf" + bytes(64), id="old binary format"),
        pytest.param(b"\x80\x04\x95 pickle", id="a pickle"),
    ],
)
def test_a_model_bst_of_any_other_content_is_refused_with_the_way_out(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "model.bst").write_bytes(content)

    with pytest.raises(ModelLoadError, match=r"save it again as model\.ubj"):
        load_registry(load_settings(None, model_path=tmp_path / "model.bst"), default_loaders())
