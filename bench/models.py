"""The models the benchmark serves, and the in-process cost of their predict calls.

Models are trained on the spot from fixed seeds instead of being shipped, so the repository holds
no binary files and every run serves the same models.  They are saved with joblib because that
is the one format every server in the comparison can load: the tutorial app and MLServer's
scikit-learn runtime both call ``joblib.load``, and flaskserve reads it with ``--allow-pickle``.

The in-process timings are the compute floor: no server can answer one request faster than the
model predicts one row, so they tell how much of a server's latency is its own overhead.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np


@dataclass(frozen=True)
class BenchModel:
    """A trained model saved to disk, with the one row every benchmark request sends."""

    name: str
    path: Path
    features: tuple[str, ...]
    row: tuple[float, ...]
    description: str

    def named_row(self) -> dict[str, float]:
        """The row as ``{feature: value}``, the body of flaskserve's and the tutorial's ``/predict``."""
        return dict(zip(self.features, self.row, strict=True))

    def v2_body(self) -> dict[str, Any]:
        """The row as an Open Inference Protocol (V2) request, the body MLServer expects."""
        return {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [1, len(self.row)],
                    "datatype": "FP64",
                    "data": list(self.row),
                }
            ]
        }


def train_linear(folder: Path) -> BenchModel:
    """The tutorial's LinearRegression on two features named ``x`` and ``y``.

    It is fitted on a DataFrame, as the tutorial does, so the model itself records the feature
    names and a server can check the request against them.
    """
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.uniform(0, 10, 200), "y": rng.uniform(0, 10, 200)})
    target = 3.0 * frame["x"] - 2.0 * frame["y"] + 1.0 + rng.normal(0, 0.5, 200)
    model = LinearRegression().fit(frame, target)
    path = folder / "linear.joblib"
    joblib.dump(model, path)
    return BenchModel(
        name="linear",
        path=path,
        features=("x", "y"),
        row=(1.0, 2.0),
        description="LinearRegression, features x and y, 200 training rows",
    )


def _synthetic_regression(rows: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(rows, features))
    weights = rng.normal(size=features)
    target = data @ weights + np.sin(data[:, 0] * 3.0) + rng.normal(0, 0.3, rows)
    return data, target


def _forest(
    folder: Path, name: str, *, trees: int, max_depth: int | None, rows: int, seed: int
) -> BenchModel:
    from sklearn.ensemble import RandomForestRegressor

    data, target = _synthetic_regression(rows, 20, seed)
    # Fitting uses both cores to save time; the saved model predicts on one, like a served
    # model should: with n_jobs=2 each predict call would start a thread pool and spend
    # milliseconds on it, which is a tuning mistake rather than a property of any server.
    model = RandomForestRegressor(n_estimators=trees, max_depth=max_depth, random_state=seed, n_jobs=2).fit(
        data, target
    )
    model.set_params(n_jobs=None)
    path = folder / f"{name}.joblib"
    joblib.dump(model, path)
    row = tuple(round(float(value), 3) for value in data[0])
    depth = "unlimited depth" if max_depth is None else f"max_depth {max_depth}"
    return BenchModel(
        name=name,
        path=path,
        features=tuple(f"x{index}" for index in range(20)),
        row=row,
        description=f"RandomForestRegressor, {trees} trees, {depth}, 20 features, {rows} rows, seed {seed}",
    )


def train_forest(folder: Path) -> BenchModel:
    """The case 2 model: 100 trees of depth 10 on 20 synthetic features, fitted on a bare array."""
    return _forest(folder, "forest", trees=100, max_depth=10, rows=5000, seed=42)


def train_large_forest(folder: Path) -> BenchModel:
    """A model large enough (about 180 MB) that per-worker memory growth is visible against it."""
    return _forest(folder, "large-forest", trees=100, max_depth=None, rows=20000, seed=7)


def train_all(folder: Path, *, large: bool) -> dict[str, BenchModel]:
    """Every model a run serves, by name; the large forest only when ``large`` (the memory phase).

    It takes the longest to fit, so a run without the memory phase is spared it.
    """
    trained = {"linear": train_linear(folder), "forest": train_forest(folder)}
    if large:
        trained["large"] = train_large_forest(folder)
    return trained


@dataclass(frozen=True)
class Floor:
    """In-process ``model.predict`` time for a number of rows."""

    model: str
    rows: int
    seconds: float


def time_floors(trained: Mapping[str, BenchModel], max_batch_size: int) -> list[Floor]:
    """The compute floor of the case models, one row and batches; the forest also at a full batch.

    The full batch is what one batched call costs at most, which the batching latency target
    budgets for (see :func:`full_batch_ms`).
    """
    sizes = {"linear": (1, 64), "forest": tuple(sorted({1, 64, max_batch_size}))}
    return [
        Floor(trained[name].description.split(",")[0], rows, predict_seconds(trained[name], rows))
        for name, rows_per_call in sizes.items()
        for rows in rows_per_call
    ]


def full_batch_ms(floors: Sequence[Floor], max_batch_size: int) -> float | None:
    """Milliseconds one forest ``predict`` takes on a full batch, if it was timed."""
    return next(
        (
            floor.seconds * 1000
            for floor in floors
            if floor.model.startswith("RandomForest") and floor.rows == max_batch_size
        ),
        None,
    )


def predict_seconds(model: BenchModel, rows: int, repeats: int = 200) -> float:
    """Median wall time of one ``model.predict`` call on ``rows`` rows, in this process.

    The rows are a bare float array, which is what a server hands to scikit-learn after parsing;
    the warning scikit-learn raises about missing feature names is silenced so it is not timed.
    """
    estimator = joblib.load(model.path)
    batch = np.tile(np.asarray(model.row, dtype=np.float64), (rows, 1))
    timings = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(10):
            estimator.predict(batch)
        for _ in range(repeats):
            start = time.perf_counter()
            estimator.predict(batch)
            timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def floor_seconds(
    work: Callable[[], object],
    repeats: int = 50,
    rounds: int = 5,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Median over ``rounds`` of the mean time of ``work()`` by ``clock``, in this process, after a warm-up.

    The default clock is wall time; :func:`time.thread_time` counts only this thread's CPU time, which
    other processes on a shared machine inflate far less.
    """
    for _ in range(5):
        work()
    means = []
    for _ in range(rounds):
        start = clock()
        for _ in range(repeats):
            work()
        means.append((clock() - start) / repeats)
    return statistics.median(means)


_LOADED_SIZE_PROBE = """
import json, sys
import joblib, numpy, sklearn.ensemble, sklearn.linear_model

def rss():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024

before = rss()
model = joblib.load(sys.argv[1])
print(json.dumps({"bytes": rss() - before}))
"""


def loaded_size_bytes(model: BenchModel) -> int:
    """How much resident memory loading the model adds to a fresh interpreter.

    Measured in a child process so the libraries are already imported before the baseline is
    read and nothing the benchmark itself holds is counted.
    """
    output = subprocess.run(
        [sys.executable, "-c", _LOADED_SIZE_PROBE, str(model.path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(json.loads(output)["bytes"])
