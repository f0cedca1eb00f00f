"""The tutorial's model, done right: a linear regression on features ``x`` and ``y``, actually fitted.

The classic Flask tutorial pickles an unfitted ``LinearRegression`` and serves
it; its first request fails. This one is fitted on synthetic data with a fixed
seed (target ≈ 1 + 2x + 2y) and saved as skops, which loads without running code,
with the reference profile of its training data beside it (docs/monitoring.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEMO_MODEL_NAME = "linear"


def train_demo_model(directory: Path) -> Path:
    """Fit the demo model and save it as ``directory/linear/1/model.skops``; returns the repository root."""
    import pandas as pd
    import skops.io as sio
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(7)
    features = pd.DataFrame({"x": rng.uniform(-10, 10, 500), "y": rng.uniform(-10, 10, 500)})
    target = 1.0 + 2.0 * features["x"] + 2.0 * features["y"] + rng.normal(0, 0.05, 500)
    model = LinearRegression().fit(features, target)
    target_dir = directory / DEMO_MODEL_NAME / "1"
    target_dir.mkdir(parents=True, exist_ok=True)
    sio.dump(model, target_dir / "model.skops")
    # Its training profile beside it, so that /models/linear/monitoring shows drift from the start.
    from flaskserve.observability.drift.profile import ReferenceProfile, profile_column

    reference = ReferenceProfile(
        features=tuple(profile_column(name, features[name].to_numpy()) for name in features.columns),
        outputs={"predict": profile_column("predict", model.predict(features))},
        rows=len(features),
    )
    reference.write_beside(target_dir / "model.skops")
    return directory
