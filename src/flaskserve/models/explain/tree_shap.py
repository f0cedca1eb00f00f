"""Path-dependent TreeSHAP (Lundberg et al., 2018), exact, computed leaf by leaf with numpy.

The expected output of a tree when only the features in a set ``S`` are known
follows ``x`` at splits on those features and weighs both branches by their
training cover elsewhere. Summed over the leaves, that game is, for each leaf
``l`` with value ``v`` and the distinct features ``P`` split on along its path::

    f_l(S) = v · Π_{j ∈ S ∩ P} o_j · Π_{j ∈ P \\ S} z_j

where ``o_j`` is 1 when ``x`` satisfies every split on ``j`` along the path (0
otherwise) and ``z_j`` is the product of the cover fractions of those splits.
Shapley values are linear in the game, so each leaf's share can be computed
alone, and for this product form it has a closed form::

    φ_i = v · (o_i - z_i) · Σ_k w_k · q_k,    w_k = k! (d - k - 1)! / d!

where ``q_k`` is the coefficient of ``t^k`` in ``Π_{j ≠ i} (z_j + o_j t)`` and
``d`` is the number of features on the path. The polynomial of the whole path
is built once and each feature's factor divided out of it, which is the
algorithm's EXTEND and UNWIND. Paths are padded to one length with features
that satisfy ``o = z = 1``: such a feature changes no one's Shapley value and
gets none, so every leaf of every tree is computed in one batch of array
operations, vectorised over the rows of the request too — the cost of a row is
about ``leaves * depth²`` multiply-adds, with no Python loop over nodes.

The tree's structure arrives as a :class:`LeafTable`, built once per model from
whichever library fitted it (:mod:`.trees`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

#: Elements of the (rows * leaves * depth) arrays computed at once; rows are taken in chunks below it.
_CHUNK_ELEMENTS = 1 << 21


@dataclass(frozen=True)
class LeafTable:
    """Every leaf of a tree ensemble, each with the conditions of its path, one feature per column.

    Rows are leaves and columns the distinct features split on along the leaf's path
    (padded with neutral ones: feature 0, an unbounded interval, cover fraction 1).
    A row ``x`` reaches the leaf through column ``j`` when ``lower < x[feature] <= upper``,
    or when ``x[feature]`` is missing and ``missing_ok``.
    """

    feature: npt.NDArray[np.intp]
    lower: Floats
    upper: Floats
    missing_ok: npt.NDArray[np.bool_]
    #: The product of the cover fractions of the splits on this feature along the path.
    cover: Floats
    #: The leaf's contribution to each model output (trees' weights already applied), leaves * outputs.
    values: Floats
    #: What the model adds to the summed leaves, per output (an initial score or bias).
    offset: Floats
    #: Compare the features as float32, as scikit-learn's trees do.
    float32: bool = False

    @property
    def depth(self) -> int:
        return int(self.feature.shape[1])

    @property
    def expected(self) -> Floats:
        """The base value: the model's output averaged over the training cover, per output."""
        weights = self.cover.prod(axis=1)
        result: Floats = self.offset + weights @ self.values
        return result


@dataclass
class _Path:
    """Conditions gathered while walking down to a leaf: feature → [lower, upper, missing_ok, cover]."""

    conditions: dict[int, tuple[float, float, bool, float]]


def leaf_table(
    trees: Sequence[TreeArrays], n_outputs: int, offset: Sequence[float] | Floats, float32: bool = False
) -> LeafTable:
    """One table of every leaf of ``trees``; each tree's leaf values are already scaled to the output."""
    rows: list[tuple[dict[int, tuple[float, float, bool, float]], Floats]] = []
    for tree in trees:
        rows.extend(tree.leaves())
    depth = max((len(conditions) for conditions, _ in rows), default=0) or 1
    count = len(rows)
    feature = np.zeros((count, depth), dtype=np.intp)
    lower = np.full((count, depth), -np.inf)
    upper = np.full((count, depth), np.inf)
    missing_ok = np.ones((count, depth), dtype=bool)
    cover = np.ones((count, depth))
    values = np.zeros((count, n_outputs))
    for leaf, (conditions, value) in enumerate(rows):
        for column, (index, (low, high, missing, fraction)) in enumerate(sorted(conditions.items())):
            feature[leaf, column] = index
            lower[leaf, column], upper[leaf, column] = low, high
            missing_ok[leaf, column], cover[leaf, column] = missing, fraction
        values[leaf] = value
    return LeafTable(
        feature, lower, upper, missing_ok, cover, values, np.asarray(offset, dtype=np.float64), float32
    )


@dataclass(frozen=True)
class TreeArrays:
    """One binary tree as parallel node arrays (scikit-learn's layout), and what its leaves are worth.

    ``goes_left(x) = x <= threshold``, or ``missing_left`` when ``x`` is missing.
    """

    left: npt.NDArray[np.intp]
    right: npt.NDArray[np.intp]
    feature: npt.NDArray[np.intp]
    threshold: Floats
    missing_left: npt.NDArray[np.bool_]
    #: Training samples (or their weight) that reached each node.
    cover: Floats
    is_leaf: npt.NDArray[np.bool_]
    #: The value of node ``n`` for each output: nodes * outputs.
    value: Callable[[int], Floats]

    def leaves(self) -> Iterator[tuple[dict[int, tuple[float, float, bool, float]], Floats]]:
        """Each leaf's path conditions (by feature) and its value."""
        stack: list[tuple[int, dict[int, tuple[float, float, bool, float]]]] = [(0, {})]
        while stack:
            node, conditions = stack.pop()
            if self.is_leaf[node]:
                yield conditions, self.value(node)
                continue
            index = int(self.feature[node])
            threshold = float(self.threshold[node])
            parent = float(self.cover[node])
            low, high, missing, fraction = conditions.get(index, (-math.inf, math.inf, True, 1.0))
            for child, went_left in ((int(self.left[node]), True), (int(self.right[node]), False)):
                share = float(self.cover[child]) / parent if parent > 0 else 0.0
                narrowed = (
                    low if went_left else max(low, threshold),
                    min(high, threshold) if went_left else high,
                    missing and bool(self.missing_left[node]) == went_left,
                    fraction * share,
                )
                stack.append((child, {**conditions, index: narrowed}))


def _shapley_weights(depth: int) -> Floats:
    """``w_k = k! (d - k - 1)! / d!`` for coalitions of ``k`` of the other ``d - 1`` features."""
    return np.array(
        [math.factorial(k) * math.factorial(depth - k - 1) / math.factorial(depth) for k in range(depth)]
    )


@dataclass(frozen=True)
class TreeContributions:
    """Per-row TreeSHAP values for one chosen output of each row."""

    #: The model's full output per row (rows * outputs), before any link function.
    scores: Floats
    #: rows * features, for the output each row was explained for.
    contributions: Floats


def tree_shap(
    table: LeafTable, matrix: Floats, n_features: int, choose: Callable[[Floats], npt.NDArray[np.intp]]
) -> TreeContributions:
    """Contributions of each feature of each row to the output ``choose(scores)`` picks per row."""
    scores = np.empty((matrix.shape[0], table.values.shape[1]))
    contributions = np.empty((matrix.shape[0], n_features))
    per_chunk = max(1, _CHUNK_ELEMENTS // max(1, table.feature.size))
    for start in range(0, matrix.shape[0], per_chunk):
        rows = slice(start, start + per_chunk)
        _explain_chunk(table, matrix[rows], n_features, choose, scores[rows], contributions[rows])
    return TreeContributions(scores, contributions)


def _explain_chunk(
    table: LeafTable,
    matrix: Floats,
    n_features: int,
    choose: Callable[[Floats], npt.NDArray[np.intp]],
    scores: Floats,
    contributions: Floats,
) -> None:
    depth = table.depth
    seen = matrix.astype(np.float32) if table.float32 else matrix
    # Path columns first, then rows and leaves: each step below works on contiguous (rows x leaves) planes.
    picked = seen[:, table.feature.T].transpose(1, 0, 2)  # depth x rows x leaves
    with np.errstate(invalid="ignore"):
        inside = (picked > table.lower.T[:, None, :]) & (picked <= table.upper.T[:, None, :])
    one = np.ascontiguousarray(inside | (np.isnan(picked) & table.missing_ok.T[:, None, :]), dtype=np.float64)
    zero = table.cover.T[:, None, :]  # depth x 1 x leaves
    reached = one.prod(axis=0)  # 1 for the one leaf of each tree the row falls in
    scores[:] = table.offset + reached @ table.values
    column = choose(scores)
    leaf_value = table.values[:, column].T  # rows x leaves: the chosen output's value of each leaf

    # The path polynomial Π_j (z_j + o_j t), one (rows x leaves) plane per power of t; after
    # feature j it has degree j + 1, so only those powers are updated.
    poly = [np.ones(one.shape[1:])] + [np.zeros(one.shape[1:]) for _ in range(depth)]
    for j in range(depth):
        o, z = one[j], zero[j]
        for k in range(j + 1, 0, -1):
            poly[k] = poly[k] * z + poly[k - 1] * o
        poly[0] = poly[0] * z
    weights = _shapley_weights(depth)
    # Divide each feature's factor out, all features at once. o_i = 1: (z_i + t), by synthetic
    # division from the top; o_i = 0: the constant z_i.
    quotient = np.broadcast_to(poly[depth], one.shape)
    weighted_one = quotient * weights[depth - 1]
    for k in range(depth - 1, 0, -1):
        quotient = poly[k] - zero * quotient
        weighted_one += quotient * weights[k - 1]
    # A branch no training sample took (cover 0) has z = 0; its share is 0 whatever the weight.
    covered = np.where(zero > 0, zero, 1.0)
    weighted_zero = sum(poly[k] * weights[k] for k in range(depth)) / covered
    weighted = np.where(one > 0, weighted_one, weighted_zero)
    share = ((one - zero) * weighted * leaf_value).transpose(1, 2, 0)  # rows x leaves x depth

    n_rows = matrix.shape[0]
    index = (np.arange(n_rows)[:, None, None] * n_features + table.feature).ravel()
    contributions[:] = np.bincount(index, weights=share.ravel(), minlength=n_rows * n_features).reshape(
        n_rows, n_features
    )
