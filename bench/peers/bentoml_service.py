"""A scikit-learn model served by BentoML as its documentation shows: a service class over the model store.

``save_model`` (run once, before ``bentoml serve``) puts the joblib model into BentoML's model
store with ``bentoml.sklearn.save_model``; the service loads it from there with
``bentoml.sklearn.load_model`` and answers ``POST /predict`` with ``{"rows": [[...]]}`` as the
body (an ``np.ndarray`` parameter) and the predictions as a JSON list.  With ``BENCH_BATCH=64``
the API is ``batchable`` and BentoML's adaptive batching merges concurrent requests, up to that
many rows per call.

Environment: ``BENTOML_HOME`` (the store), ``BENCH_MODEL_NAME``, ``BENCH_WORKERS`` (default 2)
and ``BENCH_BATCH`` (unset: no batching).
"""

import os
import sys

import bentoml
import numpy as np

MODEL_NAME = os.environ.get("BENCH_MODEL_NAME", "model")
BATCH = int(os.environ.get("BENCH_BATCH") or 0)
BATCHING = {"batchable": True, "max_batch_size": BATCH} if BATCH else {}


@bentoml.service(workers=int(os.environ.get("BENCH_WORKERS", "2")))
class SklearnModel:
    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(f"{MODEL_NAME}:latest")

    @bentoml.api(**BATCHING)
    def predict(self, rows: np.ndarray) -> np.ndarray:
        return self.model.predict(rows)


def save_model(path: str) -> None:
    """Puts the joblib model at ``path`` into the store as ``BENCH_MODEL_NAME``."""
    import joblib

    bentoml.sklearn.save_model(MODEL_NAME, joblib.load(path))


if __name__ == "__main__":
    save_model(sys.argv[1])
