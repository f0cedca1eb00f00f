"""Why a model answered what it did: per-feature contributions that sum to its output.

An explanation is one more method of a served model, named :data:`EXPLAIN`: the
inference service runs it like ``predict`` (cache, batching, timeout, metrics,
row limits), and it answers one row of numbers per input row in the layout of
:mod:`.outputs` — the explained class, the base value, the output value, then
one contribution per feature, with ``base + Σ contributions == value``.

Which explainer a model gets:

- **linear** (:mod:`.linear`): anything with ``coef_`` — exact ``coef * (x - reference)``;
- **tree_shap**: scikit-learn's decision trees, random forests, extra trees and
  (histogram) gradient boosting, through this package's TreeSHAP (:mod:`.trees`,
  :mod:`.tree_shap`); XGBoost and LightGBM through their own (:mod:`.boosters`).

A ``Pipeline`` is explained when every step before the model is a per-feature
transformer (scalers, imputers, power and quantile transforms; see
:data:`PER_FEATURE_STEPS`): the model is explained on the transformed features,
and since transformed column ``j`` is made from input feature ``j`` alone, its
contribution is feature ``j``'s. Steps that mix or expand columns (one-hot
encoding, column transformers, PCA, polynomial features) have no such honest
mapping back, so such pipelines are not explained.

Before an explainer is used it is checked on probe rows: its output values must
equal the model's own scores, or the model is reported as not explainable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from flaskserve.errors import ExplainUnsupported
from flaskserve.models.explain.outputs import (
    BASE,
    FIRST_CONTRIBUTION,
    OUTPUT,
    REGRESSOR_OUTPUT,
    VALUE,
    Floats,
    Scale,
)

__all__ = [
    "BASE",
    "EXPLAIN",
    "FIRST_CONTRIBUTION",
    "OUTPUT",
    "REGRESSOR_OUTPUT",
    "SUPPORTED",
    "VALUE",
    "Explainer",
    "find_explainer",
]

#: The method name explanations run under in the inference service, metrics and logs.
EXPLAIN = "explain"

ExplainerKind = Literal["tree_shap", "linear"]

#: What can be explained, as the refusal names it.
SUPPORTED = (
    "linear and logistic models (coef_), scikit-learn decision trees, random forests, extra trees, "
    "gradient boosting and histogram gradient boosting without categorical features, XGBoost and "
    "LightGBM boosters; alone or last in a Pipeline of per-feature scalers and imputers"
)

#: Transformers whose output column j is computed from input column j alone.
PER_FEATURE_STEPS = frozenset(
    {
        "StandardScaler",
        "MinMaxScaler",
        "MaxAbsScaler",
        "RobustScaler",
        "SimpleImputer",
        "PowerTransformer",
        "QuantileTransformer",
    }
)

_PROBE_ROWS = 5
#: How far the explainer's output may be from the model's own on the probe rows. The boosters
#: compute in float32, so their contributions sum to their margin only to about 1e-6 relative.
_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Explainer:
    """Explains a model's rows: a validated matrix in, rows in the :mod:`.outputs` layout out."""

    kind: ExplainerKind
    scale: Scale
    explain: Callable[[Floats], Floats]

    def __call__(self, matrix: Floats) -> Floats:
        return self.explain(matrix)


def find_explainer(estimator: Any, n_features: int) -> Explainer:
    """The explainer for ``estimator``, checked on probe rows; :class:`ExplainUnsupported` if none fits."""
    prepare, final = _split_pipeline(estimator)
    probe = np.abs(np.random.default_rng(0).normal(size=(_PROBE_ROWS, n_features))) + 0.5
    try:
        # Reading the model runs it (a booster's configuration, a boosting model's initial score).
        core, own_score = _core_explainer(final, n_features)
        seen = prepare(probe)
        if seen.shape[1] != n_features:
            raise ExplainUnsupported(
                f"its preprocessing turns {n_features} features into {seen.shape[1]} columns, so "
                f"contributions cannot be given per input feature; supported: {SUPPORTED}"
            )
        explained = core.explain(seen)
        expected = own_score(seen)
    except ExplainUnsupported:
        raise
    except Exception as exc:
        raise ExplainUnsupported(
            f"explaining its {type(final).__name__} failed on probe rows ({type(exc).__name__}); "
            f"supported: {SUPPORTED}"
        ) from None
    value = explained[:, VALUE]
    column = explained[:, OUTPUT].astype(np.intp)
    if expected.shape[1] == 1:
        # A single margin column: the explained class's log-odds are the margin or its negation.
        own = expected[:, 0] * np.where(column == 0, -1.0, 1.0) if core.single_margin else expected[:, 0]
    else:
        own = expected[np.arange(probe.shape[0]), column]
    additive = explained[:, BASE] + explained[:, FIRST_CONTRIBUTION:].sum(axis=1)
    scale = np.maximum(1.0, np.abs(own))
    if not (np.all(np.abs(value - own) <= _TOLERANCE * scale) and np.allclose(additive, value, atol=1e-9)):
        raise ExplainUnsupported(
            f"its {type(final).__name__} did not reproduce its own output when explained; "
            f"supported: {SUPPORTED}"
        )

    def explain(matrix: Floats) -> Floats:
        return core.explain(prepare(matrix))

    return Explainer(core.kind, core.scale, explain)


@dataclass(frozen=True)
class _Core:
    kind: ExplainerKind
    scale: Scale
    explain: Callable[[Floats], Floats]
    single_margin: bool


def _core_explainer(final: Any, n_features: int) -> tuple[_Core, Callable[[Floats], Floats]]:
    """The explainer of the model itself (after any preprocessing) and the score it must reproduce."""
    from flaskserve.models.explain.boosters import booster_model
    from flaskserve.models.explain.linear import linear_model
    from flaskserve.models.explain.tree_shap import tree_shap
    from flaskserve.models.explain.trees import sklearn_tree_model

    trees = sklearn_tree_model(final, n_features)
    if trees is not None:

        def explain_trees(matrix: Floats) -> Floats:
            found = tree_shap(trees.table, matrix, n_features, trees.outputs.column)
            column = trees.outputs.column(found.scores)
            base = trees.table.expected[column]
            return trees.outputs.rows(found.scores, column, base, found.contributions)

        core = _Core("tree_shap", trees.scale, explain_trees, trees.outputs.single_margin)
        return core, trees.score
    boosted = booster_model(final)
    if boosted is not None:
        return _Core(
            "tree_shap", boosted.scale, boosted.explain, boosted.outputs.single_margin
        ), boosted.margin
    linear = linear_model(final)
    if linear is not None:
        reference = np.zeros(n_features)
        own = getattr(final, "decision_function" if linear.outputs.classifier else "predict")

        def explain_linear(matrix: Floats) -> Floats:
            return linear.explain(matrix, reference)

        def score(matrix: Floats) -> Floats:
            values = np.asarray(own(matrix), dtype=np.float64)
            return values.reshape(values.shape[0], -1)

        return _Core("linear", linear.scale, explain_linear, linear.outputs.single_margin), score
    raise ExplainUnsupported(
        f"its estimator ({type(final).__name__}) is not of a kind this server explains; "
        f"supported: {SUPPORTED}"
    )


def _split_pipeline(estimator: Any) -> tuple[Callable[[Floats], Floats], Any]:
    """The per-feature preprocessing of a Pipeline (identity for a bare model) and its final step."""
    steps = getattr(estimator, "steps", None)
    if not isinstance(steps, list):
        return _identity, estimator
    transforms = [step for _, step in steps[:-1] if step not in (None, "passthrough")]
    for step in transforms:
        name = type(step).__name__
        if name not in PER_FEATURE_STEPS or getattr(step, "add_indicator", False):
            raise ExplainUnsupported(
                f"its pipeline step {name} does not map each feature to one column, so contributions "
                f"cannot be given per input feature; supported: {SUPPORTED}"
            )

    def prepare(matrix: Floats) -> Floats:
        for step in transforms:
            matrix = np.asarray(step.transform(matrix), dtype=np.float64)
        return matrix

    return prepare, steps[-1][1]


def _identity(matrix: Floats) -> Floats:
    return matrix
