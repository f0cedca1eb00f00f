"""Direct kernels: answer a model's method without scikit-learn's per-call input checks.

A one-row ``LinearRegression.predict`` spends about 75 µs in scikit-learn and
about 1 µs in arithmetic: the rest re-validates an input that the signature has
already validated (2-D, the right width, float64, finite). For estimators whose
method is a plain formula over fitted arrays, the kernel computes that formula
itself — the very expression scikit-learn evaluates, so the answer is the same
to the bit.

Correctness first: a kernel is only offered when the estimator's class uses
scikit-learn's own ``LinearModel.predict`` unchanged (no override anywhere in
its class tree), and only after it has given exactly the estimator's own answer
on probe rows. Anything else — Pipelines, DataFrame-only models, subclasses
that change ``predict`` — goes through the estimator as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from flaskserve.models.served import ServedModel

Matrix = npt.NDArray[Any]
Kernel = Callable[[Matrix], Matrix]

_PROBE_ROWS = 7


def find_kernel(model: ServedModel, method: str) -> Kernel | None:
    """A verified direct kernel for ``model.method``, or None to call the estimator."""
    if model.wants_dataframe or model.signature.dtype != np.float64:
        return None
    kernel = _linear_predict(model.estimator) if method == "predict" else None
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
