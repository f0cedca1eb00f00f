"""A scikit-learn model served by LitServe as its documentation shows: a ``LitAPI`` run by ``LitServer``.

``setup`` loads the model once per worker, ``decode_request`` turns the JSON body into one row,
``predict`` calls the model and ``encode_response`` answers ``{"prediction": [...]}``, the same
body and answer as the tutorial app.  With ``BENCH_BATCH=64,0.005`` LitServe's own batching is
on (max batch size, timeout in seconds): its default ``batch`` gathers the decoded rows into a
list, which becomes one matrix and one ``predict`` call, and its default ``unbatch`` splits the
answers again.

Environment: ``BENCH_MODEL`` (a joblib file), ``BENCH_FEATURES`` (comma-separated JSON keys of a
row), ``BENCH_PORT``, ``BENCH_WORKERS`` (default 2) and ``BENCH_BATCH`` (unset: no batching).
"""

import os

import joblib
import litserve as ls
import numpy as np

FEATURES = os.environ.get("BENCH_FEATURES", "x,y").split(",")
BATCH = os.environ.get("BENCH_BATCH")


class SklearnAPI(ls.LitAPI):
    def setup(self, device):
        self.model = joblib.load(os.environ["BENCH_MODEL"])

    def decode_request(self, request):
        return [float(request[name]) for name in FEATURES]

    def predict(self, rows):
        matrix = np.asarray(rows, dtype=np.float64)
        return self.model.predict(matrix.reshape(-1, len(FEATURES)))

    def encode_response(self, output):
        return {"prediction": np.atleast_1d(output).tolist()}


def main():
    batching = {}
    if BATCH:
        size, timeout = BATCH.split(",")
        batching = {"max_batch_size": int(size), "batch_timeout": float(timeout)}
    server = ls.LitServer(
        SklearnAPI(**batching),
        accelerator="cpu",
        workers_per_device=int(os.environ.get("BENCH_WORKERS", "2")),
    )
    server.run(host="127.0.0.1", port=int(os.environ["BENCH_PORT"]), generate_client_file=False)


if __name__ == "__main__":
    main()
