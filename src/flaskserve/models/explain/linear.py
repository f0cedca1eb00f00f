"""Exact contributions of linear models: ``coef * (x - reference)``.

A linear model's score is ``coef · x + intercept``; relative to a reference row
``r`` it is ``(coef · r + intercept) + Σ_j coef_j (x_j - r_j)``, so each term is
exactly feature ``j``'s share and the base value is the score of the reference.
These are also the model's Shapley values when features are independent.

The reference is the training mean where the model knows it: a pipeline whose
last step before the model is a ``StandardScaler`` that centres (its output
averages 0 over the training data, so the reference there is the zero row).
Otherwise it is the zero row of the model's input, and the base value is the
intercept — a documented baseline, not an average.

Regressors explain their prediction (scale ``raw``). Classifiers explain their
``decision_function``: the log-odds of the second class for a binary
``LogisticRegression`` (scale ``log_odds``), the per-class score otherwise
(scale ``raw``: a multinomial model's logits, an SVM's margins).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flaskserve.models.explain.outputs import Floats, Outputs, Scale


@dataclass(frozen=True)
class LinearModel:
    coef: Floats  # score columns * features
    intercept: Floats
    outputs: Outputs
    scale: Scale

    def score(self, matrix: Floats) -> Floats:
        result: Floats = matrix @ self.coef.T + self.intercept
        return result

    def explain(self, matrix: Floats, reference: Floats) -> Floats:
        scores = self.score(matrix)
        column = self.outputs.column(scores)
        coef = self.coef[column]  # rows * features
        base = coef @ reference + self.intercept[column]
        return self.outputs.rows(scores, column, base, coef * (matrix - reference))


def linear_model(estimator: Any) -> LinearModel | None:
    """``estimator`` as a linear score, or None when it has no single set of coefficients to read.

    Anything with ``coef_`` qualifies here; the caller checks the score against the
    model's own ``predict`` or ``decision_function`` before serving it.
    """
    from sklearn.base import is_classifier, is_regressor
    from sklearn.linear_model import LogisticRegression

    coef = getattr(estimator, "coef_", None)
    if coef is None or not (is_regressor(estimator) or is_classifier(estimator)):
        return None
    coef = np.asarray(coef, dtype=np.float64)
    if coef.ndim == 1:
        coef = coef[None, :]
    intercept = np.atleast_1d(np.asarray(getattr(estimator, "intercept_", 0.0), dtype=np.float64))
    if coef.ndim != 2 or intercept.ndim != 1 or intercept.shape[0] not in (1, coef.shape[0]):
        return None
    intercept = np.broadcast_to(intercept, (coef.shape[0],)).copy()
    if not is_classifier(estimator):
        if coef.shape[0] != 1:
            return None  # several targets: the answer has no one value to explain
        return LinearModel(coef, intercept, Outputs(classifier=False), "raw")
    if coef.shape[0] == 1:
        scale: Scale = "log_odds" if isinstance(estimator, LogisticRegression) else "raw"
        return LinearModel(coef, intercept, Outputs(classifier=True, single_margin=True), scale)
    return LinearModel(coef, intercept, Outputs(classifier=True), "raw")
