"""A signature read off a loaded model: its methods, its classes, its features and its kind of input.

Everything is read by name from the attributes scikit-learn gives a fitted
estimator (``feature_names_in_``, ``n_features_in_``, ``classes_``), which the
adapters of the other formats copy; the model's settings fill in what the
model cannot say.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from flaskserve.errors import ModelLoadError
from flaskserve.models.estimator import Estimator
from flaskserve.models.signature.contract import (
    DEFAULT_MAX_TEXT_BYTES,
    KNOWN_METHODS,
    TABLE,
    TEXT,
    TEXT_FEATURE,
    InputKind,
    Signature,
    plain,
)
from flaskserve.models.signature.validation import NAME_LIMIT

_OBJECT = np.dtype(object)


def infer_signature(
    estimator: Estimator,
    *,
    feature_names: Sequence[str] | None = None,
    allow_missing: bool = False,
    input_kind: InputKind | None = None,
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
) -> Signature:
    """Read the signature off a fitted scikit-learn-like estimator.

    Names come from ``feature_names_in_`` (fit on a DataFrame), else from settings,
    else are made up as ``x0..xN`` from ``n_features_in_``. A Pipeline exposes both
    attributes of its first step, so Pipelines work unchanged.

    A model takes text when ``input_kind`` (the model's ``input`` setting) says so,
    or, when it says nothing, when :func:`takes_text` recognises a text vectorizer
    at its front: such a model has no ``n_features_in_`` to read.
    """
    methods = tuple(m for m in KNOWN_METHODS if callable(getattr(estimator, m, None)))
    if not methods:
        raise ModelLoadError(
            f"the object is a {type(estimator).__name__}, which has none of the methods "
            f"{', '.join(KNOWN_METHODS)}; it cannot be served"
        )
    classes = getattr(estimator, "classes_", None)
    plain_classes = None if classes is None else tuple(plain(c) for c in classes)
    kind = input_kind if input_kind is not None else (TEXT if takes_text(estimator) else TABLE)
    if kind == TEXT:
        return _text_signature(methods, plain_classes, feature_names, allow_missing, max_text_bytes)
    names_given = True
    fitted_names = getattr(estimator, "feature_names_in_", None)
    n_features = getattr(estimator, "n_features_in_", None)
    if feature_names is not None:
        names = tuple(str(n) for n in feature_names)
        if n_features is not None and len(names) != int(n_features):
            raise ModelLoadError(
                f"the settings name {len(names)} features but the model was fit on {int(n_features)}"
            )
    elif fitted_names is not None:
        names = tuple(str(n) for n in fitted_names)
    elif n_features is not None:
        names = tuple(f"x{i}" for i in range(int(n_features)))
        names_given = False
    else:
        raise ModelLoadError(
            "cannot tell how many features the model takes (it has no n_features_in_); "
            "name them with 'features = [...]' in the model's settings"
        )
    if len(set(names)) != len(names):
        raise ModelLoadError("feature names must be unique")
    return Signature(
        feature_names=names,
        methods=methods,
        classes=plain_classes,
        names_given=names_given,
        allow_missing=allow_missing,
    )


def _text_signature(
    methods: tuple[str, ...],
    classes: tuple[Any, ...] | None,
    feature_names: Sequence[str] | None,
    allow_missing: bool,
    max_text_bytes: int,
) -> Signature:
    names = (TEXT_FEATURE,) if feature_names is None else tuple(str(n) for n in feature_names)
    if len(names) != 1:
        raise ModelLoadError(
            f"a text model takes one feature, its text; the settings name {len(names)} "
            f'({", ".join(names[:NAME_LIMIT])}): name one, e.g. features = ["utterance"]'
        )
    if allow_missing:
        raise ModelLoadError("allow_missing applies to numeric features; a text model refuses null texts")
    return Signature(
        feature_names=names,
        methods=methods,
        classes=classes,
        dtype=_OBJECT,
        kind=TEXT,
        max_text_bytes=max_text_bytes,
    )


def takes_text(estimator: Any) -> bool:
    """Whether the estimator reads raw text: it is, or starts with, a scikit-learn text vectorizer.

    ``CountVectorizer`` (and so ``TfidfVectorizer``) and ``HashingVectorizer``
    count, at the front of a Pipeline, or as every part of a ``FeatureUnion``
    there (word and character n-grams side by side). Anything else is read as a
    table; a custom text model says ``input = "text"`` in its settings.
    """
    try:
        from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer
        from sklearn.pipeline import FeatureUnion, Pipeline
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return False
    if isinstance(estimator, (CountVectorizer, HashingVectorizer)):
        return True
    if isinstance(estimator, Pipeline):
        return bool(estimator.steps) and takes_text(estimator.steps[0][1])
    if isinstance(estimator, FeatureUnion):
        parts = [part for _, part in estimator.transformer_list if part != "drop"]
        return bool(parts) and all(takes_text(part) for part in parts)
    return False
