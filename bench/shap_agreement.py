"""How far flaskserve's TreeSHAP is from the ``shap`` package's, on 50 rows of a few tree models.

``shap`` is not a dependency of flaskserve, not even of its tests (it brings numba and
llvmlite, about 210 MB); run this in an environment that has it, with flaskserve's
sources importable::

    python -m venv /tmp/shap-env && /tmp/shap-env/bin/pip install shap scikit-learn pydantic pydantic-settings
    PYTHONPATH=src /tmp/shap-env/bin/python bench/shap_agreement.py

It prints the largest absolute difference per model, the table in docs/explanations.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def main() -> None:
    import shap
    from sklearn import datasets, ensemble, tree

    from flaskserve.models.explain import FIRST_CONTRIBUTION, OUTPUT, find_explainer

    diabetes, diabetes_y = datasets.load_diabetes(return_X_y=True)
    cancer, cancer_y = datasets.load_breast_cancer(return_X_y=True)
    iris, iris_y = datasets.load_iris(return_X_y=True)
    cases: list[tuple[str, Any, Any, Any]] = [
        (
            "RandomForestRegressor(50, max_depth=8)",
            ensemble.RandomForestRegressor(50, max_depth=8),
            diabetes,
            diabetes_y,
        ),
        ("GradientBoostingRegressor(100)", ensemble.GradientBoostingRegressor(), diabetes, diabetes_y),
        (
            "GradientBoostingClassifier, binary (log-odds)",
            ensemble.GradientBoostingClassifier(),
            cancer,
            cancer_y,
        ),
        (
            "RandomForestClassifier(50), 3 classes (probability)",
            ensemble.RandomForestClassifier(50),
            iris,
            iris_y,
        ),
        (
            "DecisionTreeRegressor(max_depth=10)",
            tree.DecisionTreeRegressor(max_depth=10),
            diabetes,
            diabetes_y,
        ),
        (
            "HistGradientBoostingRegressor(50)",
            ensemble.HistGradientBoostingRegressor(max_iter=50),
            diabetes,
            diabetes_y,
        ),
    ]
    for label, model, features, target in cases:
        model.set_params(random_state=0)
        model.fit(features, target)
        rows = features[:50]
        ours = find_explainer(model, features.shape[1])(rows)
        theirs = np.asarray(
            shap.TreeExplainer(model, feature_perturbation="tree_path_dependent").shap_values(
                rows, check_additivity=False
            )
        )
        explained = ours[:, OUTPUT].astype(int)
        if theirs.ndim == 3:  # rows x features x classes: the class each row was explained for
            theirs = theirs[np.arange(len(rows)), :, explained]
        elif "binary" in label:  # one margin; flaskserve explains the predicted class's log-odds
            theirs = theirs * np.where(explained == 1, 1.0, -1.0)[:, None]
        print(f"| {label} | {np.abs(ours[:, FIRST_CONTRIBUTION:] - theirs).max():.1e} |")


if __name__ == "__main__":
    main()
