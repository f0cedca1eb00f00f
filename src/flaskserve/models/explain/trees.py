"""scikit-learn's tree models as :class:`~.tree_shap.LeafTable` s, with the score TreeSHAP explains.

- ``DecisionTree*``, ``RandomForest*``, ``ExtraTrees*``: the classifiers' class
  probabilities (the trees' leaf fractions, averaged) or the regressors' value;
- ``GradientBoosting*``: the raw score (log-odds for a binary classifier, one
  score per class otherwise), the initial estimate plus the shrunk trees;
- ``HistGradientBoosting*`` without categorical features: the raw score, as above.

What a model adds to its trees (the initial estimate, the baseline) is not read
from private attributes: it is measured as the model's own score on a zero row
less the trees' sum. Histogram gradient boosting keeps its trees only in the
private ``_predictors`` (and its untransformed score in ``_raw_predict``), so a
scikit-learn release could change them; that is why the caller checks the whole
table against the model's own scores on probe rows before serving it, and
reports the model as not explainable rather than explain it wrongly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from flaskserve.models.explain.outputs import Outputs, Scale
from flaskserve.models.explain.tree_shap import Floats, LeafTable, TreeArrays, leaf_table


@dataclass(frozen=True)
class TreeModel:
    """A tree model ready for TreeSHAP: its leaves, its score function and how scores become outputs."""

    table: LeafTable
    score: Callable[[Floats], Floats]
    outputs: Outputs
    scale: Scale


def sklearn_tree_model(estimator: Any, n_features: int) -> TreeModel | None:
    """The tree model behind ``estimator``, or None when it is not one of the supported kinds."""
    from sklearn import ensemble, tree

    classifier = hasattr(estimator, "classes_")
    averaged = (
        tree.BaseDecisionTree,
        ensemble.RandomForestClassifier,
        ensemble.RandomForestRegressor,
        ensemble.ExtraTreesClassifier,
        ensemble.ExtraTreesRegressor,
    )
    if isinstance(estimator, averaged):
        return _averaged_trees(estimator, classifier)
    if isinstance(estimator, (ensemble.GradientBoostingClassifier, ensemble.GradientBoostingRegressor)):
        return _gradient_boosting(estimator, classifier, n_features)
    if isinstance(
        estimator, (ensemble.HistGradientBoostingClassifier, ensemble.HistGradientBoostingRegressor)
    ):
        return _hist_gradient_boosting(estimator, classifier, n_features)
    return None


def _sklearn_tree(fitted: Any, scale: float, normalise: bool, column: int | None = None) -> TreeArrays:
    """A fitted ``tree_`` as node arrays; leaf values times ``scale`` (fractions when ``normalise``)."""
    nodes = fitted.tree_
    values = np.asarray(nodes.value[:, 0, :], dtype=np.float64)
    if normalise:
        totals = values.sum(axis=1, keepdims=True)
        values = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)
    if column is not None:
        values = values[:, column : column + 1]
    values = values * scale
    left = np.asarray(nodes.children_left, dtype=np.intp)
    missing = getattr(nodes, "missing_go_to_left", None)
    return TreeArrays(
        left=left,
        right=np.asarray(nodes.children_right, dtype=np.intp),
        feature=np.asarray(nodes.feature, dtype=np.intp),
        threshold=np.asarray(nodes.threshold, dtype=np.float64),
        missing_left=np.zeros(left.shape, bool) if missing is None else np.asarray(missing, dtype=bool),
        cover=np.asarray(nodes.weighted_n_node_samples, dtype=np.float64),
        is_leaf=left < 0,
        value=lambda node: values[node],
    )


def _averaged_trees(estimator: Any, classifier: bool) -> TreeModel | None:
    trees: Sequence[Any] = getattr(estimator, "estimators_", None) or [estimator]
    if getattr(estimator, "n_outputs_", 1) != 1:
        return None
    scale = 1.0 / len(trees)
    arrays = [_sklearn_tree(t, scale, normalise=classifier) for t in trees]
    n_outputs = len(estimator.classes_) if classifier else 1
    table = leaf_table(arrays, n_outputs, np.zeros(n_outputs), float32=True)
    if classifier:
        return TreeModel(table, estimator.predict_proba, Outputs(classifier=True), "probability")
    return TreeModel(table, _column(estimator.predict), Outputs(classifier=False), "raw")


def _gradient_boosting(estimator: Any, classifier: bool, n_features: int) -> TreeModel:
    stages = estimator.estimators_  # stages * score columns
    rate = float(estimator.learning_rate)
    n_outputs = stages.shape[1]
    arrays = [
        _placed(_sklearn_tree(stage[k], rate, normalise=False), k, n_outputs)
        for stage in stages
        for k in range(n_outputs)
    ]
    score = _column(estimator.decision_function if classifier else estimator.predict)
    table = _with_offset(leaf_table(arrays, n_outputs, np.zeros(n_outputs), float32=True), score, n_features)
    return _boosted(table, score, classifier, n_outputs)


def _hist_gradient_boosting(estimator: Any, classifier: bool, n_features: int) -> TreeModel | None:
    categorical = getattr(estimator, "is_categorical_", None)
    if categorical is not None and np.any(categorical):
        return None
    predictors = estimator._predictors  # iterations * score columns
    n_outputs = len(predictors[0]) if predictors else 1
    arrays = [
        _placed(_hist_tree(predictor.nodes), k, n_outputs)
        for iteration in predictors
        for k, predictor in enumerate(iteration)
    ]
    # A regressor's predict applies its loss's link (exp for poisson); the raw score is what the trees sum to.
    score = _column(estimator.decision_function if classifier else estimator._raw_predict)
    table = _with_offset(leaf_table(arrays, n_outputs, np.zeros(n_outputs)), score, n_features)
    return _boosted(table, score, classifier, n_outputs)


def _hist_tree(nodes: Any) -> TreeArrays:
    values = np.asarray(nodes["value"], dtype=np.float64)[:, None]
    return TreeArrays(
        left=np.asarray(nodes["left"], dtype=np.intp),
        right=np.asarray(nodes["right"], dtype=np.intp),
        feature=np.asarray(nodes["feature_idx"], dtype=np.intp),
        threshold=np.asarray(nodes["num_threshold"], dtype=np.float64),
        missing_left=np.asarray(nodes["missing_go_to_left"], dtype=bool),
        cover=np.asarray(nodes["count"], dtype=np.float64),
        is_leaf=np.asarray(nodes["is_leaf"], dtype=bool),
        value=lambda node: values[node],
    )


def _placed(tree: TreeArrays, column: int, n_outputs: int) -> TreeArrays:
    """A one-output tree whose value counts towards score column ``column`` of ``n_outputs``."""
    if n_outputs == 1:
        return tree
    own = tree.value

    def value(node: int) -> Floats:
        placed = np.zeros(n_outputs)
        placed[column] = own(node)[0]
        return placed

    return TreeArrays(
        tree.left,
        tree.right,
        tree.feature,
        tree.threshold,
        tree.missing_left,
        tree.cover,
        tree.is_leaf,
        value,
    )


def _with_offset(table: LeafTable, score: Callable[[Floats], Floats], n_features: int) -> LeafTable:
    """``table`` with the constant the model adds to its trees, measured on a zero row."""
    zero = np.zeros((1, n_features))
    values = zero.astype(np.float32) if table.float32 else zero
    picked = values[:, table.feature]
    reached = ((picked > table.lower) & (picked <= table.upper)).prod(axis=2).astype(np.float64)
    offset = score(zero)[0] - (reached @ table.values)[0]
    return LeafTable(
        table.feature,
        table.lower,
        table.upper,
        table.missing_ok,
        table.cover,
        table.values,
        offset,
        table.float32,
    )


def _boosted(
    table: LeafTable, score: Callable[[Floats], Floats], classifier: bool, n_outputs: int
) -> TreeModel:
    if not classifier:
        return TreeModel(table, score, Outputs(classifier=False), "raw")
    if n_outputs == 1:
        return TreeModel(table, score, Outputs(classifier=True, single_margin=True), "log_odds")
    return TreeModel(table, score, Outputs(classifier=True), "raw")


def _column(method: Callable[[Any], Any]) -> Callable[[Floats], Floats]:
    """``method``'s answer as rows * score columns (a single score becomes one column)."""

    def score(matrix: Floats) -> Floats:
        result: npt.NDArray[np.float64] = np.asarray(method(matrix), dtype=np.float64)
        return result.reshape(result.shape[0], -1)

    return score
