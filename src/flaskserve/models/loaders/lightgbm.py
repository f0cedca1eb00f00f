"""LightGBM's own model files: the text that ``Booster.save_model`` writes.

The file holds trees and parameters, not code, so it loads without trust. Its
usual ending, ``.txt``, says nothing about the framework, so flaskserve claims
``.lgb`` and ``.lgb.txt`` only: save as ``model.lgb.txt``.

The booster is wrapped in an adapter with scikit-learn's attributes and methods.
A classification objective (``binary``, ``multiclass``, ``multiclassova``) gives
``predict_proba`` and classes ``0..k-1``, with ``predict`` the likeliest class,
as ``LGBMClassifier`` answers; any other objective is served as a regressor.

LightGBM trusts its files: the counts and tree links they hold are checked first
(:mod:`flaskserve.models.loaders.booster_check`), and LightGBM is handed the text
only if it passes, without the ``tree_sizes`` index that has it parse trees in
threads, where a damaged tree aborts the process.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import numpy.typing as npt

from flaskserve.errors import ModelLoadError
from flaskserve.models.loaders import LoadedFile, require
from flaskserve.models.loaders.booster_check import check_lightgbm
from flaskserve.models.trust import ModelFile, TrustPolicy

_CLASSIFIERS = ("binary", "multiclass", "multiclassova")
#: The names LightGBM makes up for a model trained on a bare array.
_MADE_UP_NAME = re.compile(r"Column_[0-9]+")


class LightGBMModel:
    """A booster served as a regressor: ``predict`` is the booster's own prediction."""

    def __init__(self, booster: Any) -> None:
        self._booster = booster
        self.n_features_in_ = int(booster.num_feature())
        names = [str(n) for n in booster.feature_name()]
        if names and not all(_MADE_UP_NAME.fullmatch(n) for n in names):
            self.feature_names_in_ = np.array(names, dtype=object)

    @property
    def booster(self) -> Any:
        """The booster itself, for what the adapter does not wrap (explanations read its contributions)."""
        return self._booster

    def predict(self, features: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return self._raw(features)

    def _raw(self, features: npt.NDArray[Any]) -> npt.NDArray[Any]:
        # One thread per call: gunicorn's workers already use every core, and an OpenMP pool
        # started before the fork hangs the workers that inherit it.
        return np.asarray(self._booster.predict(features, num_threads=1))


class LightGBMClassifier(LightGBMModel):
    """A booster with a classification objective: probabilities per class, and the likeliest class."""

    def __init__(self, booster: Any, n_classes: int) -> None:
        super().__init__(booster)
        self.classes_ = np.arange(n_classes)

    def predict(self, features: npt.NDArray[Any]) -> npt.NDArray[Any]:
        result: npt.NDArray[Any] = self.classes_[np.argmax(self.predict_proba(features), axis=1)]
        return result

    def predict_proba(self, features: npt.NDArray[Any]) -> npt.NDArray[Any]:
        values = self._raw(features)
        if values.ndim == 1:  # binary: the positive class's probability
            return np.column_stack([1.0 - values, values])
        return values


class LightGBMLoader:
    suffixes: tuple[str, ...] = (".lgb", ".lgb.txt")
    frameworks: tuple[str, ...] = ("lightgbm",)

    def load(self, file: ModelFile, *, display_name: str, trust: TrustPolicy) -> LoadedFile:
        lgb = require("lightgbm", "lightgbm")
        try:
            text = file.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelLoadError(f"{display_name} is not a LightGBM model file: it is not text") from exc
        checked = check_lightgbm(text, display_name)
        try:
            booster = lgb.Booster(model_str=checked)
        except Exception as exc:  # not a LightGBM model file
            raise ModelLoadError(
                f"{display_name} is not a LightGBM model file: {type(exc).__name__}"
            ) from exc
        params = getattr(booster, "params", None) or {}
        objective = str(params.get("objective", "")).split()[0] if params.get("objective") else ""
        if objective in _CLASSIFIERS:
            n_classes = int(booster.num_model_per_iteration()) if objective != "binary" else 2
            model: LightGBMModel = LightGBMClassifier(booster, n_classes)
        else:
            model = LightGBMModel(booster)
        return LoadedFile(model=model, platform="lightgbm_text")
