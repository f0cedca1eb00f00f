"""Making a model version's reference profile from its training data (``flaskserve profile``).

The training table is read with pandas (CSV, or Parquet when pyarrow is
installed); the model's features are taken from it by name, and the model is run
on them, so the profile of the outputs is what the model answered to its own
training data. A classifier's predicted classes are profiled as categories,
anything else as numbers. A text model's one column holds its training texts
(:mod:`.text`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flaskserve.errors import ConfigError
from flaskserve.models.served import ServedModel
from flaskserve.models.signature.validation import object_array
from flaskserve.observability.drift.profile import FeatureProfile, ReferenceProfile, profile_column
from flaskserve.observability.drift.text import TextProfile, profile_texts

__all__ = ["profile_model", "read_table"]

#: The method whose answers are profiled, when the model offers it.
PROFILED_METHOD = "predict"


def read_table(path: Path) -> pd.DataFrame:
    """A training table from a CSV or Parquet file."""
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow  # type: ignore[import-not-found]  # noqa: F401
        except ImportError:
            raise ConfigError("reading Parquet needs pyarrow: pip install pyarrow") from None
        return pd.read_parquet(path)
    try:
        return pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"cannot read '{path.name}' as CSV: {exc}") from exc


def profile_model(model: ServedModel, table: pd.DataFrame) -> ReferenceProfile:
    """The reference profile of ``model`` on ``table``, which must hold a column per feature."""
    names = model.signature.feature_names
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise ConfigError(
            f"the data has no column for {', '.join(missing[:10])} of model '{model.name}' "
            f"(its features: {', '.join(names[:20])})"
        )
    text: TextProfile | None = None
    texts: list[str] = []
    if model.signature.is_text:
        # An empty cell is read as NaN: an empty text.
        texts = ["" if value != value else str(value) for value in table[names[0]].tolist()]
        text = profile_texts(names[0], texts, model.estimator)
        features: tuple[FeatureProfile, ...] = text.features
    else:
        features = tuple(profile_column(name, table[name].to_numpy()) for name in names)
    outputs: dict[str, FeatureProfile] = {}
    if PROFILED_METHOD in model.signature.methods:
        matrix = (
            object_array(texts)
            if text is not None
            else table[list(names)].to_numpy(dtype=model.signature.dtype)
        )
        answers = np.asarray(model.call(PROFILED_METHOD, matrix))
        if answers.ndim == 1:
            values: Any = answers.astype(str) if model.signature.is_classifier else answers
            outputs[PROFILED_METHOD] = profile_column(PROFILED_METHOD, values)
    return ReferenceProfile(features=features, outputs=outputs, rows=len(table), text=text)
