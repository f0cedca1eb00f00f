"""Small models and repositories for tests: ours, and users' own.

Every model is trained here from data that ships with scikit-learn, in a
fraction of a second, so no test downloads anything.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def iris_frame() -> tuple[Any, Any]:
    """Iris as a DataFrame with plain column names, and its species labels as strings."""
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    frame = data.frame.iloc[:, :4].copy()
    frame.columns = list(IRIS_FEATURES)
    labels = np.array(data.target_names)[data.target.to_numpy()]
    return frame, labels


def train_iris_classifier() -> Any:
    """LogisticRegression on iris with named features and string classes (setosa, versicolor, virginica)."""
    from sklearn.linear_model import LogisticRegression

    frame, labels = iris_frame()
    return LogisticRegression(max_iter=1000).fit(frame, labels)


def train_iris_pipeline() -> Any:
    """A scaler + classifier Pipeline fit on named features, with integer classes."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame, _ = iris_frame()
    target = load_iris().target
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(frame, target)


def train_diabetes_regressor() -> Any:
    """Ridge regression fit on a bare array: its features are served as x0..x9."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    features, target = load_diabetes(return_X_y=True)
    return Ridge(alpha=0.1).fit(features, target)


def diabetes_rows(count: int = 5) -> npt.NDArray[np.float64]:
    from sklearn.datasets import load_diabetes

    features: npt.NDArray[np.float64] = load_diabetes(return_X_y=True)[0][:count]
    return features


def train_linear_xy() -> Any:
    """The tutorial's model: target ≈ 1 + 2x + 2y, fit on named features x and y."""
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"x": rng.uniform(-10, 10, 200), "y": rng.uniform(-10, 10, 200)})
    return LinearRegression().fit(frame, 1.0 + 2.0 * frame["x"] + 2.0 * frame["y"])


def train_constant(answer: float, features: tuple[str, ...] = ("x", "y")) -> Any:
    """A regressor on named ``features`` answering ``answer`` whatever the row: a version to tell apart."""
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({name: rng.uniform(-1, 1, 20) for name in features})
    return LinearRegression().fit(frame, np.full(20, float(answer)))


class ExplodingRegressor:
    """A regressor that raises when a row's first value is negative: a model failing on some inputs."""

    n_features_in_ = 2

    def fit(self, features: Any, target: Any) -> ExplodingRegressor:
        return self

    def predict(self, features: Any) -> npt.NDArray[np.float64]:
        matrix = np.asarray(features, dtype=np.float64)
        if (matrix[:, 0] < 0).any():
            raise ValueError("negative input reached the model")
        result: npt.NDArray[np.float64] = matrix.sum(axis=1)
        return result


def save_model(model: Any, path: Path) -> Path:
    """Save by suffix: ``.skops`` with skops, ``.joblib`` with joblib, ``.pkl`` with pickle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".skops":
        import skops.io as sio

        sio.dump(model, path)
    elif suffix == ".joblib":
        import joblib

        joblib.dump(model, path)
    else:
        import pickle

        with path.open("wb") as stream:
            pickle.dump(model, stream)
    return path


def write_repository(root: Path, models: dict[str, dict[str, tuple[Any, str]]]) -> Path:
    """Lay out ``root/NAME/VERSION/model.SUFFIX`` from ``{name: {version: (model, suffix)}}``."""
    for name, versions in models.items():
        for version, (model, suffix) in versions.items():
            save_model(model, root / name / version / f"model{suffix}")
    return root


class ManualClock:
    """A :class:`~flaskserve.inference.clock.Clock` whose time moves only when a test calls :meth:`advance`.

    A thread that waits on it blocks until it is notified or until ``advance``
    moves time past its deadline, so batching tests are exact and never sleep.
    """

    #: Real seconds a wait may block before giving up, so a broken test fails instead of hanging.
    SAFETY_TIMEOUT_S = 10.0

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._lock = threading.Condition()
        self._waiting: list[threading.Condition] = []

    def monotonic(self) -> float:
        return self.now

    def wait(self, condition: threading.Condition, timeout: float) -> None:
        with self._lock:
            self._waiting.append(condition)
            self._lock.notify_all()
        try:
            condition.wait(self.SAFETY_TIMEOUT_S)
        finally:
            with self._lock:
                self._waiting.remove(condition)

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every waiter so it can check its deadline."""
        with self._lock:
            self.now += seconds
            waiting = list(self._waiting)
        for condition in waiting:
            with condition:
                condition.notify_all()

    def wait_for_waiters(self, count: int = 1) -> None:
        """Block until ``count`` threads are waiting on this clock (e.g. a batch leader)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._waiting) >= count, self.SAFETY_TIMEOUT_S):
                raise TimeoutError(f"expected {count} thread(s) waiting on the clock")
