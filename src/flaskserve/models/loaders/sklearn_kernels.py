"""Direct kernels for scikit-learn estimators: answer a method without scikit-learn's per-call checks.

Models loaded from scikit-learn's formats (pickle, joblib, skops) carry
:func:`find_kernel` as their :class:`~flaskserve.models.served.KernelFinder`
(see :attr:`flaskserve.models.loaders.LoadedFile.kernels`); the inference
service asks it for a kernel once per model version and method, and knows
nothing of scikit-learn.

A one-row ``LinearRegression.predict`` spends about 75 µs in scikit-learn and
about 1 µs in arithmetic: the rest re-validates an input that the signature has
already validated (2-D, the right width, float64, finite). For estimators whose
method is a plain formula over fitted arrays, the kernel computes that formula
itself — the very expression scikit-learn evaluates, so the answer is the same
to the bit.

A random forest of 100 trees spends about 7 ms on one row, almost all of it in
the thread-pool machinery that fans the call out to its trees and in each tree
validating the input again; asking the trees directly, in the same order and
summing the same way, takes about 0.5 ms.

Correctness first: a kernel is only offered when the estimator's class uses
scikit-learn's own ``LinearModel.predict`` unchanged (no override anywhere in
its class tree), and only after it has given exactly the estimator's own answer
on probe rows. Anything else — Pipelines, DataFrame-only models, subclasses
that change ``predict`` — goes through the estimator as usual.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flaskserve.models.served import Kernel, Matrix, ServedModel

_PROBE_ROWS = 7


def find_kernel(model: ServedModel, method: str) -> Kernel | None:
    """A verified direct kernel for ``model.method``, or None to call the estimator."""
    if model.wants_dataframe or model.signature.dtype != np.float64:
        return None
    kernel = _linear_predict(model.estimator) if method == "predict" else None
    if kernel is None:
        kernel = _forest_method(model.estimator, method)
    if kernel is None:
        return None
    probe = np.random.default_rng(0).normal(size=(_PROBE_ROWS, model.signature.n_features))
    try:
        expected = model.call(method, probe)
        got = kernel(probe)
    except Exception:
        return None
    if got.shape != expected.shape or got.dtype != expected.dtype or not np.array_equal(got, expected):
        return None
    return kernel


def _linear_predict(estimator: Any) -> Kernel | None:
    """``X @ coef_ + intercept_`` for linear models whose ``predict`` is scikit-learn's own."""
    plain = _plain_linear_predicts()
    if plain is None:
        return None
    base, predicts = plain
    cls = type(estimator)
    if not isinstance(estimator, base) or getattr(cls, "_decision_function", None) is not getattr(
        base, "_decision_function", None
    ):
        return None
    if cls.predict not in predicts:
        return None
    coef = getattr(estimator, "coef_", None)
    intercept = getattr(estimator, "intercept_", None)
    if type(coef) is not np.ndarray or coef.dtype != np.float64 or coef.ndim not in (1, 2):
        return None
    if not isinstance(intercept, (float, np.floating, np.ndarray)):
        return None
    weights = coef if coef.ndim == 1 else coef.T

    def predict(matrix: Matrix) -> Matrix:
        result: Matrix = matrix @ weights + intercept
        return result

    return predict


def _forest_method(estimator: Any, method: str) -> Kernel | None:
    """The forest's average over its trees, asked of each tree without re-validating the input.

    Offered for scikit-learn's own random and extra-trees forests with one output,
    whose ``predict``/``predict_proba`` are scikit-learn's unchanged. The trees
    are called in order and summed into the same float64 array before the same
    division, which is what the forest does when it runs on one thread.
    """
    try:
        from sklearn.ensemble import (
            ExtraTreesClassifier,
            ExtraTreesRegressor,
            RandomForestClassifier,
            RandomForestRegressor,
        )
        from sklearn.ensemble._forest import ForestClassifier, ForestRegressor
    except ImportError:  # pragma: no cover - a scikit-learn without these private bases
        return None
    cls = type(estimator)
    if cls not in (RandomForestRegressor, ExtraTreesRegressor, RandomForestClassifier, ExtraTreesClassifier):
        return None
    trees = getattr(estimator, "estimators_", None)
    if not trees or getattr(estimator, "n_outputs_", None) != 1:
        return None
    count = len(trees)
    if isinstance(estimator, ForestRegressor) and method == "predict":
        if cls.predict is not ForestRegressor.predict:
            return None

        def regress(matrix: Matrix) -> Matrix:
            rows = np.ascontiguousarray(matrix, dtype=np.float32)
            total = np.zeros(rows.shape[0], dtype=np.float64)
            for tree in trees:
                total += tree.predict(rows, check_input=False)
            total /= count
            return total

        return regress
    if not isinstance(estimator, ForestClassifier) or cls.predict_proba is not ForestClassifier.predict_proba:
        return None
    n_classes = int(estimator.n_classes_)

    def probabilities(matrix: Matrix) -> Matrix:
        rows = np.ascontiguousarray(matrix, dtype=np.float32)
        total = np.zeros((rows.shape[0], n_classes), dtype=np.float64)
        for tree in trees:
            total += tree.predict_proba(rows, check_input=False)
        total /= count
        return total

    if method == "predict_proba":
        return probabilities
    if method == "predict" and cls.predict is ForestClassifier.predict:
        classes = estimator.classes_

        def classify(matrix: Matrix) -> Matrix:
            chosen: Matrix = classes.take(np.argmax(probabilities(matrix), axis=1), axis=0)
            return chosen

        return classify
    return None


def _plain_linear_predicts() -> tuple[type, frozenset[Any]] | None:
    """scikit-learn's ``LinearModel`` and the ``predict`` methods known to be exactly its own.

    ``LinearRegression`` and ``Ridge`` re-declare ``predict`` only to give it a
    docstring (``return super().predict(X)``); any other override is not trusted.
    """
    try:
        from sklearn.linear_model import LinearRegression, Ridge
        from sklearn.linear_model._base import LinearModel
    except ImportError:  # pragma: no cover - a scikit-learn without this private base
        return None
    return LinearModel, frozenset({LinearModel.predict, LinearRegression.predict, Ridge.predict})
