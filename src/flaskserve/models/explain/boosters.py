"""XGBoost and LightGBM explain themselves: TreeSHAP values from their own ``pred_contribs``.

Both libraries compute path-dependent TreeSHAP natively (``Booster.predict(...,
pred_contribs=True)`` and ``pred_contrib=True``), one column per feature plus a
last column for the bias, summing to the raw margin. That margin is the
explained score: log-odds for a binary objective, one score per class for a
multi-class one, the untransformed prediction for the rest (identity for squared
error; the log of the mean for Poisson, gamma and Tweedie objectives).

Served from their own files, the boosters come wrapped in flaskserve's adapters,
which expose ``booster``; pickled scikit-learn wrappers (``XGBClassifier``,
``LGBMRegressor``, ...) are read through ``get_booster()`` and ``booster_``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from flaskserve.models.explain.outputs import Floats, Outputs, Scale

_BINARY = {"xgboost": ("binary:logistic", "binary:logitraw"), "lightgbm": ("binary",)}
_MULTICLASS = {"xgboost": ("multi:softprob", "multi:softmax"), "lightgbm": ("multiclass", "multiclassova")}


@dataclass(frozen=True)
class BoosterModel:
    """A booster's contributions (rows * score columns * (features + bias)) and how to read them."""

    contributions: Callable[[Floats], Floats]
    margin: Callable[[Floats], Floats]
    outputs: Outputs
    scale: Scale

    def explain(self, matrix: Floats) -> Floats:
        contributions = self.contributions(matrix)
        scores = contributions.sum(axis=2)
        column = self.outputs.column(scores)
        chosen = contributions[np.arange(matrix.shape[0]), column]
        return self.outputs.rows(scores, column, chosen[:, -1], chosen[:, :-1])


def booster_model(estimator: Any) -> BoosterModel | None:
    """The XGBoost or LightGBM booster behind ``estimator``, or None when it has none."""
    booster = _booster(estimator)
    if booster is None:
        return None
    library = type(booster).__module__.partition(".")[0]
    if library == "xgboost":
        objective = str(json.loads(booster.save_config())["learner"]["objective"]["name"])
        contributions, margin = _xgboost(booster)
    elif library == "lightgbm":
        objective = str(booster.params.get("objective", "")).split()[0] if booster.params else ""
        contributions, margin = _lightgbm(booster)
    else:
        return None
    if objective in _BINARY[library]:
        return BoosterModel(contributions, margin, Outputs(classifier=True, single_margin=True), "log_odds")
    if objective in _MULTICLASS[library]:
        return BoosterModel(contributions, margin, Outputs(classifier=True), "raw")
    if hasattr(estimator, "classes_"):
        return None  # a classifier with an objective this module does not know the link of
    return BoosterModel(contributions, margin, Outputs(classifier=False), "raw")


def _booster(estimator: Any) -> Any:
    """The booster object itself (an XGBClassifier's ``booster`` attribute is a parameter string)."""
    found = [getattr(estimator, "booster", None), getattr(estimator, "booster_", None)]
    if callable(getattr(estimator, "get_booster", None)):
        found.insert(0, estimator.get_booster())
    return next((candidate for candidate in found if hasattr(candidate, "predict")), None)


def _xgboost(booster: Any) -> tuple[Callable[[Floats], Floats], Callable[[Floats], Floats]]:
    import xgboost

    def contributions(matrix: Floats) -> Floats:
        data = xgboost.DMatrix(matrix, feature_names=booster.feature_names, nthread=1)
        values = np.asarray(booster.predict(data, pred_contribs=True), dtype=np.float64)
        return values if values.ndim == 3 else values[:, None, :]

    def margin(matrix: Floats) -> Floats:
        values = np.asarray(booster.inplace_predict(matrix, predict_type="margin"), dtype=np.float64)
        return values.reshape(matrix.shape[0], -1)

    return contributions, margin


def _lightgbm(booster: Any) -> tuple[Callable[[Floats], Floats], Callable[[Floats], Floats]]:
    def contributions(matrix: Floats) -> Floats:
        values = np.asarray(booster.predict(matrix, pred_contrib=True, num_threads=1), dtype=np.float64)
        return values.reshape(matrix.shape[0], -1, matrix.shape[1] + 1)

    def margin(matrix: Floats) -> Floats:
        values = np.asarray(booster.predict(matrix, raw_score=True, num_threads=1), dtype=np.float64)
        return values.reshape(matrix.shape[0], -1)

    return contributions, margin
