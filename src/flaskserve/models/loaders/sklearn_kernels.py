"""Direct kernels for scikit-learn estimators: answer a method without scikit-learn's per-call checks.

Models loaded from scikit-learn's formats (pickle, joblib, skops) carry
:func:`find_kernel` as their :class:`~flaskserve.models.served.KernelFinder`
(see :attr:`flaskserve.models.loaders.LoadedFile.kernels`); the inference
service asks it for a kernel once per model version and method, and knows
nothing of scikit-learn.

A one-row ``LinearRegression.predict`` spends about 75 µs in scikit-learn and
about 1 µs in arithmetic: the rest re-validates an input that the signature has
already validated (2-D, the right width, float64, finite). For estimators whose
method is a plain formula over fitted arrays, the kernel computes that formula
itself — the very expression scikit-learn evaluates, so the answer is the same
to the bit.

A random forest of 100 trees spends about 7 ms on one row, almost all of it in
the thread-pool machinery that fans the call out to its trees and in each tree
validating the input again; asking the trees directly, in the same order and
summing the same way, takes about 1 ms. That is still one call per tree, and
each releases and retakes the GIL: in a server whose other threads run Python,
every retake may wait out the interpreter's switch interval (5 ms), so a 1 ms
call can take hundreds. A forest of moderate size is therefore walked as one:
its trees' nodes laid end to end in a few arrays, every (tree, row) pair goes
down one level per step, a handful of numpy operations per level for all trees
and rows at once (about 0.05 ms for one row, 0.5 ms for 64, over 100 trees of
depth 10). The leaves' values are then summed tree after tree, as the forest sums them.

Correctness first: a kernel is only offered when the estimator's class uses
scikit-learn's own ``LinearModel.predict`` unchanged (no override anywhere in
its class tree), and only after it has given exactly the estimator's own answer
on probe rows. Anything else — Pipelines, DataFrame-only models, subclasses
that change ``predict`` — goes through the estimator as usual.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flaskserve.models.served import Kernel, Matrix, ServedModel

_PROBE_ROWS = 7


def find_kernel(model: ServedModel, method: str) -> Kernel | None:
    """A verified direct kernel for ``model.method``, or None to call the estimator."""
    if model.wants_dataframe or model.signature.dtype != np.float64:
        return None
    kernel = _linear_predict(model.estimator) if method == "predict" else None
    if kernel is None:
        kernel = _forest_method(model.estimator, method)
    if kernel is None:
        return None
    probe = np.random.default_rng(0).normal(size=(_PROBE_ROWS, model.signature.n_features))
    try:
        expected = model.call(method, probe)
        got = kernel(probe)
    except Exception:
        return None
    if got.shape != expected.shape or got.dtype != expected.dtype or not np.array_equal(got, expected):
        return None
    return kernel


def _linear_predict(estimator: Any) -> Kernel | None:
    """``X @ coef_ + intercept_`` for linear models whose ``predict`` is scikit-learn's own."""
    plain = _plain_linear_predicts()
    if plain is None:
        return None
    base, predicts = plain
    cls = type(estimator)
    if not isinstance(estimator, base) or getattr(cls, "_decision_function", None) is not getattr(
        base, "_decision_function", None
    ):
        return None
    if cls.predict not in predicts:
        return None
    coef = getattr(estimator, "coef_", None)
    intercept = getattr(estimator, "intercept_", None)
    if type(coef) is not np.ndarray or coef.dtype != np.float64 or coef.ndim not in (1, 2):
        return None
    if not isinstance(intercept, (float, np.floating, np.ndarray)):
        return None
    weights = coef if coef.ndim == 1 else coef.T

    def predict(matrix: Matrix) -> Matrix:
        result: Matrix = matrix @ weights + intercept
        return result

    return predict


def _forest_method(estimator: Any, method: str) -> Kernel | None:
    """The forest's average over its trees, asked of each tree without re-validating the input.

    Offered for scikit-learn's own random and extra-trees forests with one output,
    whose ``predict``/``predict_proba`` are scikit-learn's unchanged. The trees
    are called in order and summed into the same float64 array before the same
    division, which is what the forest does when it runs on one thread.
    """
    try:
        from sklearn.ensemble import (
            ExtraTreesClassifier,
            ExtraTreesRegressor,
            RandomForestClassifier,
            RandomForestRegressor,
        )
        from sklearn.ensemble._forest import ForestClassifier, ForestRegressor
    except ImportError:  # pragma: no cover - a scikit-learn without these private bases
        return None
    cls = type(estimator)
    if cls not in (RandomForestRegressor, ExtraTreesRegressor, RandomForestClassifier, ExtraTreesClassifier):
        return None
    trees = getattr(estimator, "estimators_", None)
    if not trees or getattr(estimator, "n_outputs_", None) != 1:
        return None
    count = len(trees)
    flat = _FlatForest.of(trees)
    if isinstance(estimator, ForestRegressor) and method == "predict":
        if cls.predict is not ForestRegressor.predict:
            return None

        def regress_tree_by_tree(matrix: Matrix) -> Matrix:
            rows = np.ascontiguousarray(matrix, dtype=np.float32)
            total = np.zeros(rows.shape[0], dtype=np.float64)
            for tree in trees:
                total += tree.predict(rows, check_input=False)
            total /= count
            return total

        if flat is None:
            return regress_tree_by_tree

        def regress(matrix: Matrix) -> Matrix:
            if np.isnan(matrix).any():  # missing values take each node's own side: the trees know it
                return regress_tree_by_tree(matrix)
            leaves = flat.values[flat.leaves(matrix), 0, 0]
            # A running sum down the trees adds them one after the other, as the forest does.
            total: Matrix = np.cumsum(leaves, axis=0)[-1]
            total /= count
            return total

        return regress
    if not isinstance(estimator, ForestClassifier) or cls.predict_proba is not ForestClassifier.predict_proba:
        return None
    n_classes = int(estimator.n_classes_)

    def probabilities_tree_by_tree(matrix: Matrix) -> Matrix:
        rows = np.ascontiguousarray(matrix, dtype=np.float32)
        total = np.zeros((rows.shape[0], n_classes), dtype=np.float64)
        for tree in trees:
            total += tree.predict_proba(rows, check_input=False)
        total /= count
        return total

    def probabilities_walked(matrix: Matrix) -> Matrix:
        assert flat is not None
        if np.isnan(matrix).any():
            return probabilities_tree_by_tree(matrix)
        # Each tree's answer is its leaf's stored class fractions.
        proba = flat.values[flat.leaves(matrix), 0, :n_classes]
        total: Matrix = np.cumsum(proba, axis=0)[-1]
        total /= count
        return total

    probabilities = probabilities_tree_by_tree if flat is None else probabilities_walked

    if method == "predict_proba":
        return probabilities
    if method == "predict" and cls.predict is ForestClassifier.predict:
        classes = estimator.classes_

        def classify(matrix: Matrix) -> Matrix:
            chosen: Matrix = classes.take(np.argmax(probabilities(matrix), axis=1), axis=0)
            return chosen

        return classify
    return None


class _FlatForest:
    """Every tree of a forest in one set of arrays, walked one level per step for all trees and rows at once.

    Node ``n`` of tree ``t`` sits at ``roots[t] + n``. A leaf is its own two
    children and compares feature 0 against +inf, so a pair that reached its leaf
    stays there while the deeper trees go on. A node's test is scikit-learn's:
    the row's value as float32, widened to compare with the float64 threshold.
    Built only for forests of at most :attr:`MAX_NODES` nodes: the arrays copy
    the trees' (about 40 bytes a node) in each process that serves the model.
    """

    #: About 20 MiB of arrays at most; larger forests are asked tree by tree.
    MAX_NODES = 1 << 19

    __slots__ = ("children", "depth", "feature", "roots", "threshold", "values")

    def __init__(self, structures: list[Any]) -> None:
        sizes = [int(tree.node_count) for tree in structures]
        starts = np.cumsum([0, *sizes[:-1]])
        placed = list(zip(structures, starts, strict=True))
        left = np.concatenate([tree.children_left + start for tree, start in placed])
        right = np.concatenate([tree.children_right + start for tree, start in placed])
        leaf = np.concatenate([tree.children_left == -1 for tree in structures])
        here = np.arange(leaf.shape[0])
        left[leaf], right[leaf] = here[leaf], here[leaf]
        #: ``children[2 * node + went_left]``: the right child first, then the left one.
        self.children = np.column_stack([right, left]).ravel().astype(np.intp)
        self.feature = np.concatenate([tree.feature for tree in structures]).astype(np.intp)
        self.feature[leaf] = 0
        self.threshold = np.concatenate([tree.threshold for tree in structures]).astype(np.float64)
        self.threshold[leaf] = np.inf
        self.values = np.concatenate([tree.value for tree in structures])
        self.roots = starts.astype(np.intp)
        self.depth = max(int(tree.max_depth) for tree in structures)

    @classmethod
    def of(cls, trees: list[Any]) -> _FlatForest | None:
        """The flat form of ``trees``, or None when it would be too large or the trees are unusual."""
        try:
            structures = [tree.tree_ for tree in trees]
            if sum(int(tree.node_count) for tree in structures) > cls.MAX_NODES:
                return None
            if len({tree.value.shape[1:] for tree in structures}) != 1:
                return None
            return cls(structures)
        except (AttributeError, TypeError, ValueError):  # pragma: no cover - a scikit-learn with other trees
            return None

    def leaves(self, matrix: Matrix) -> Matrix:
        """The leaf each tree sends each row to, shaped ``(trees, rows)``."""
        rows = np.ascontiguousarray(matrix, dtype=np.float32).astype(np.float64)
        count, width = rows.shape
        flat = rows.ravel()
        row_starts = np.tile(np.arange(count, dtype=np.intp) * width, self.roots.shape[0])
        nodes = np.repeat(self.roots, count)
        for _ in range(self.depth):
            went_left = flat[row_starts + self.feature[nodes]] <= self.threshold[nodes]
            nodes = self.children[2 * nodes + went_left]
        leaves: Matrix = nodes.reshape(self.roots.shape[0], count)
        return leaves


def _plain_linear_predicts() -> tuple[type, frozenset[Any]] | None:
    """scikit-learn's ``LinearModel`` and the ``predict`` methods known to be exactly its own.

    ``LinearRegression`` and ``Ridge`` re-declare ``predict`` only to give it a
    docstring (``return super().predict(X)``); any other override is not trusted.
    """
    try:
        from sklearn.linear_model import LinearRegression, Ridge
        from sklearn.linear_model._base import LinearModel
    except ImportError:  # pragma: no cover - a scikit-learn without this private base
        return None
    return LinearModel, frozenset({LinearModel.predict, LinearRegression.predict, Ridge.predict})
