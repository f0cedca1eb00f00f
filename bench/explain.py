"""What an explanation costs next to the prediction it explains, per row, through the whole app.

Trains a few models of each kind the explainers cover, serves them from one
repository, and times ``POST /models/NAME/predict`` and ``POST /models/NAME/explain``
on the same rows through the app's WSGI callable (routing, decoding, the service,
encoding; no socket). Prints one row per model and batch size: the median over
rounds of the time per row of each, and their ratio. With ``--update-doc`` the
table replaces the one between the markers in ``docs/explanations.md``.

    python bench/explain.py [--rounds 5] [--update-doc docs/explanations.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from threadpoolctl import threadpool_limits

BEGIN = "<!-- bench-explain: begin -->"
END = "<!-- bench-explain: end -->"
BATCHES = (1, 100)


def _models(root: Path) -> dict[str, tuple[str, np.ndarray[Any, Any]]]:
    """Write the models under ``root``; ``{name: (description, rows to send)}``."""
    import lightgbm
    import xgboost
    from sklearn import datasets, ensemble, linear_model, pipeline, preprocessing

    from flaskserve import testing

    cancer, cancer_y = datasets.load_breast_cancer(return_X_y=True)
    diabetes, diabetes_y = datasets.load_diabetes(return_X_y=True)
    made: dict[str, tuple[str, Any, np.ndarray[Any, Any]]] = {
        "logistic": (
            "scaled logistic regression, 30 features (linear)",
            pipeline.make_pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression()),
            cancer,
        ),
        "forest": (
            "random forest, 100 trees of depth 8, 10 features",
            ensemble.RandomForestRegressor(100, max_depth=8, random_state=0),
            diabetes,
        ),
        "boosting": (
            "gradient boosting, 100 trees of depth 3, 30 features",
            ensemble.GradientBoostingClassifier(random_state=0),
            cancer,
        ),
        "hist": (
            "histogram gradient boosting, 100 trees of 31 leaves, 30 features",
            ensemble.HistGradientBoostingClassifier(max_iter=100, early_stopping=False),
            cancer,
        ),
    }
    target = {"logistic": cancer_y, "forest": diabetes_y, "boosting": cancer_y, "hist": cancer_y}
    described: dict[str, tuple[str, np.ndarray[Any, Any]]] = {}
    for name, (label, model, rows) in made.items():
        testing.save_model(model.fit(rows, target[name]), root / name / "1" / "model.skops")
        described[name] = (label, rows)
    xgb = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 6, "nthread": 1}, xgboost.DMatrix(cancer, cancer_y), 100
    )
    (root / "xgboost" / "1").mkdir(parents=True)
    xgb.save_model(root / "xgboost" / "1" / "model.ubj")
    described["xgboost"] = ("XGBoost, 100 trees of depth 6, 30 features (its own pred_contribs)", cancer)
    lgb = lightgbm.train(
        {"objective": "binary", "verbose": -1, "num_threads": 1}, lightgbm.Dataset(cancer, cancer_y), 100
    )
    (root / "lightgbm" / "1").mkdir(parents=True)
    lgb.save_model(root / "lightgbm" / "1" / "model.lgb.txt")
    described["lightgbm"] = ("LightGBM, 100 trees of 31 leaves, 30 features (its own pred_contrib)", cancer)
    return described


def _timer(client: Any, path: str, body: bytes) -> Callable[[], float]:
    def once() -> float:
        started = time.perf_counter()
        answer = client.post(path, data=body, content_type="application/json")
        elapsed = time.perf_counter() - started
        if answer.status_code != 200:
            raise SystemExit(f"{path} answered {answer.status_code}: {answer.get_data(as_text=True)[:200]}")
        return elapsed

    return once


def measure(rounds: int) -> list[tuple[str, int, float, float]]:
    """``(model, rows per request, predict ms per row, explain ms per row)`` for every case."""
    from flaskserve.app import create_app
    from flaskserve.settings import load_settings

    results = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        models = _models(root)
        client = create_app(load_settings(None, model_path=root, default_model="logistic")).test_client()
        for name, (label, rows) in models.items():
            for batch in BATCHES:
                body = orjson.dumps({"instances": rows[:batch].tolist()}, option=orjson.OPT_SERIALIZE_NUMPY)
                predict = _timer(client, f"/models/{name}/predict", body)
                explain = _timer(client, f"/models/{name}/explain", body)
                predict(), explain()  # warm up: routes, kernels and the explainer are built on first use
                repeats = max(2, 40 // batch)
                per_round_p, per_round_e = [], []
                # Side by side, alternating, so a busy moment of the machine weighs on both alike.
                for _ in range(rounds):
                    per_round_p.append(statistics.fmean(predict() for _ in range(repeats)))
                    per_round_e.append(statistics.fmean(explain() for _ in range(repeats)))
                results.append(
                    (
                        label,
                        batch,
                        statistics.median(per_round_p) * 1000 / batch,
                        statistics.median(per_round_e) * 1000 / batch,
                    )
                )
                print(f"{label}, {batch} row(s): done", flush=True)
    return results


def table(results: list[tuple[str, int, float, float]], rounds: int) -> str:
    lines = [
        f"Measured by `make bench-explain` on {platform.machine()} with {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; medians of {rounds} rounds, predict and explain timed alternately, "
        "one thread per call. "
        "The machine was shared and busy: read the ratios, not the absolute times.",
        "",
        "| model | rows per request | predict, ms per row | explain, ms per row | explain / predict |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, batch, predict, explain in results:
        lines.append(f"| {label} | {batch} | {predict:.3f} | {explain:.3f} | {explain / predict:.1f}x |")
    return "\n".join(lines)


def update_doc(path: Path, text: str) -> None:
    document = path.read_text(encoding="utf-8")
    start, end = document.index(BEGIN) + len(BEGIN), document.index(END)
    path.write_text(document[:start] + "\n" + text + "\n" + document[end:], encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--update-doc", type=Path, default=None)
    args = parser.parse_args()
    # One thread per call, as a server worker runs: OpenMP's pool (histogram boosting) oversubscribes
    # a shared machine and would time the contention, not the model.
    with threadpool_limits(limits=1):
        results = measure(args.rounds)
    text = table(results, args.rounds)
    print(text)
    if args.update_doc is not None:
        update_doc(args.update_doc, text)


if __name__ == "__main__":
    main()
