"""XGBoost's own model files: UBJSON (``.ubj``) and JSON (``.xgb.json``).

These files hold trees and parameters, not code, so they load without trust:
the safe way to ship an XGBoost model, where a pickled ``XGBClassifier`` would
need ``--allow-pickle``. A bare ``.json`` is not claimed, because any JSON file
could sit in a model folder; the ``.xgb`` tag names the framework.

The booster is wrapped in an adapter with scikit-learn's attributes and methods.
A classification objective (``binary:*`` with probabilities, ``multi:*``) gives
``predict_proba`` and classes ``0..k-1``, with ``predict`` the likeliest class,
as ``XGBClassifier`` answers; any other objective is served as a regressor.

XGBoost trusts its files: the counts, sizes and tree links they hold are checked
first (:mod:`flaskserve.models.loaders.booster_check`), and XGBoost is handed the
same bytes only if they pass.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt

from flaskserve.errors import ModelLoadError
from flaskserve.models.loaders import LoadedFile, require
from flaskserve.models.loaders.booster_check import check_xgboost, xgboost_encoding
from flaskserve.models.trust import ModelFile, TrustPolicy

#: Objectives whose answers are class probabilities, or margins that become them.
_CLASSIFIERS = ("binary:logistic", "binary:logitraw", "multi:softprob", "multi:softmax")


class XGBoostModel:
    """A booster served as a regressor: ``predict`` is the booster's own prediction."""

    def __init__(self, booster: Any, feature_names: list[str] | None) -> None:
        self._booster = booster
        self.n_features_in_ = int(booster.num_features())
        if feature_names:
            self.feature_names_in_ = np.array(feature_names, dtype=object)

    @property
    def booster(self) -> Any:
        """The booster itself, for what the adapter does not wrap (explanations read its contributions)."""
        return self._booster

    def predict(self, features: npt.NDArray[Any]) -> npt.NDArray[Any]:
        # inplace_predict skips the DMatrix copy and, unlike predict, is safe to call from many threads.
        return np.asarray(self._booster.inplace_predict(features))


class XGBoostClassifier(XGBoostModel):
    """A booster with a classification objective: probabilities per class, and the likeliest class."""

    def __init__(self, booster: Any, feature_names: list[str] | None, objective: str, n_classes: int) -> None:
        super().__init__(booster, feature_names)
        self._objective = objective
        self.classes_ = np.arange(n_classes)

    def predict(self, features: npt.NDArray[Any]) -> npt.NDArray[Any]:
        result: npt.NDArray[Any] = self.classes_[np.argmax(self.predict_proba(features), axis=1)]
        return result

    def predict_proba(self, features: npt.NDArray[Any]) -> npt.NDArray[Any]:
        if self._objective in ("binary:logitraw", "multi:softmax"):
            # These objectives answer margins or labels; probabilities come from the margins.
            margin = np.asarray(self._booster.inplace_predict(features, predict_type="margin"), np.float64)
            if self._objective == "binary:logitraw":
                return _two_columns(1.0 / (1.0 + np.exp(-margin)))
            shifted = np.exp(margin - margin.max(axis=1, keepdims=True))
            softmax: npt.NDArray[Any] = shifted / shifted.sum(axis=1, keepdims=True)
            return softmax
        values = np.asarray(self._booster.inplace_predict(features))
        return _two_columns(values) if self._objective == "binary:logistic" else values


def _two_columns(positive: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """scikit-learn's binary layout: one column per class, the negative class first."""
    column = positive.reshape(-1)
    return np.column_stack([1.0 - column, column])


class XGBoostLoader:
    suffixes: tuple[str, ...] = (".ubj", ".xgb.json")
    frameworks: tuple[str, ...] = ("xgboost",)

    def load(self, file: ModelFile, *, display_name: str, trust: TrustPolicy) -> LoadedFile:
        xgb = require("xgboost", "xgboost")
        check_xgboost(file.data, display_name)
        try:
            booster = xgb.Booster(model_file=bytearray(file.data))
            config = json.loads(booster.save_config())
        except Exception as exc:  # not an XGBoost model, or from a newer XGBoost
            raise ModelLoadError(
                f"{display_name} is not an XGBoost model file this version can read: {type(exc).__name__}"
            ) from exc
        # One thread per call: gunicorn's workers already use every core, and an OpenMP pool
        # started before the fork hangs the workers that inherit it.
        booster.set_param({"nthread": 1})
        learner = config.get("learner", {})
        objective = str(learner.get("objective", {}).get("name", ""))
        n_classes = int(learner.get("learner_model_param", {}).get("num_class", "0") or 0)
        names = booster.feature_names
        platform = "xgboost_json" if xgboost_encoding(file.data) == "json" else "xgboost_ubj"
        if objective in _CLASSIFIERS:
            model: XGBoostModel = XGBoostClassifier(booster, names, objective, max(n_classes, 2))
        else:
            model = XGBoostModel(booster, names)
        return LoadedFile(model=model, platform=platform)
