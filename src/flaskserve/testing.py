"""Small models and repositories for tests: ours, and users' own.

Every model is trained here from data that ships with scikit-learn, in a
fraction of a second, so no test downloads anything.
"""

from __future__ import annotations

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
