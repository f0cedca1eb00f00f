"""Checks on the trees inside a loaded scikit-learn model, made before any of its methods runs.

scikit-learn's compiled tree code follows the indices a tree stores (child nodes,
split features, category bitsets) without bounds checks. A skops file is data, but a
crafted one can hold a tree whose left child is node 10**9, whose links loop, or that
splits on feature 50 of a model that takes 4: skops builds it faithfully, and the
first prediction reads outside the arrays (the worker crashes) or never returns.
skops vouches for an object's type, not for what it holds; :func:`check_trees` checks
the rest, for every tree it finds anywhere in the model.

Decision trees (``sklearn.tree._tree.Tree``, inside DecisionTree*, ExtraTree*,
RandomForest*, ExtraTrees*, GradientBoosting*, IsolationForest, ...):

- the node count is positive and equals the length of the stored node array;
- every node is a leaf, with both children -1, or a split, with both children among
  nodes 1 to n-1;
- every node but the root is the child of exactly one node and is reached from the
  root: there is no loop, and no node is shared or left dangling;
- split features lie in ``[0, n_features)``, and ``n_features`` is the owning
  estimator's ``n_features_in_``, which scikit-learn checks every input against;
- the recorded depth is at least the real one (``decision_path`` sizes a buffer by it);
- ``n_outputs`` and ``n_classes`` agree with each other and with the estimator, and
  the value array has one row per node and ``n_outputs`` by ``max(n_classes)`` cells.

HistGradientBoosting predictors (``TreePredictor``): the node records have the layout
scikit-learn's compiled code reads; leaves and splits as above (``is_leaf``, ``left``,
``right``); ``feature_idx`` below the model's feature count; a numerical split has a
bin threshold below its feature's bin count and a threshold that is a number; a
categorical split is on a feature the binner knows as categorical and points at a
bitset the predictor has. The model has ``n_trees_per_iteration_`` predictors per
iteration, its binner describes as many features as the model takes, and its
categorical preprocessor, if any, is made of steps that keep the column count and
hands the predictors exactly that many columns.

Ensembles that pass their input to their trees without checking it: a forest's and a
gradient boosting model's trees take exactly the ensemble's features; a bagging
ensemble's (IsolationForest's) trees take exactly the features of their subset.
GradientBoosting adds its trees' outputs, unchecked, into its initial predictions: it
keeps one column of trees per output, and its initial estimator (``"zero"``, or the
DummyClassifier or DummyRegressor scikit-learn uses by default; any other is refused, as
its output width cannot be known without running it) makes exactly that many columns.

The checks are numpy operations over whole node arrays. The one loop per tree that
remains (pointer doubling, to find each node's depth and prove the root reaches it)
runs about log2(node count) times, so a forest of hundreds of trees is checked in
milliseconds. Anything unexpected while checking refuses the model too.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from flaskserve.errors import ModelLoadError, clip

Indices = npt.NDArray[np.int64]
Flags = npt.NDArray[np.bool_]

_ADVICE = "The file is damaged or was crafted; export the model again from the estimator you trained."

#: Values that hold no objects, so the search for trees does not look inside them.
_ATOMS = (
    str,
    bytes,
    bytearray,
    int,
    float,
    complex,
    type(None),
    np.generic,
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
)


class _Malformed(Exception):
    """What is wrong, worded to follow the name of the estimator it is wrong in, and what to do."""

    def __init__(self, problem: str, advice: str = _ADVICE) -> None:
        super().__init__(problem)
        self.advice = advice

    def within(self, prefix: str) -> _Malformed:
        """The same fault, told from further out in the model."""
        return _Malformed(f"{prefix}{self}", self.advice)


def check_trees(model: Any, display_name: str) -> int:
    """Refuse a model holding a tree scikit-learn could not walk safely; return how many trees passed.

    Raises :class:`ModelLoadError` naming the estimator (by its place in the model)
    and what is wrong with it.
    """
    search = _TreeSearch()
    try:
        search.run(model)
    except _Malformed as exc:
        raise ModelLoadError(f"refusing to load {display_name}: {exc}. {exc.advice}") from None
    except Exception as exc:
        problem = f"its trees could not be checked ({type(exc).__name__})"
        raise ModelLoadError(f"refusing to load {display_name}: {problem}. {_ADVICE}") from exc
    return search.trees


class _TreeSearch:
    """Visits every object of a model once, checking each tree and each tree ensemble it meets."""

    def __init__(self) -> None:
        # Imported here: flaskserve imports scikit-learn only when it loads a model.
        from sklearn.base import is_classifier
        from sklearn.compose import ColumnTransformer
        from sklearn.dummy import DummyClassifier, DummyRegressor
        from sklearn.ensemble._bagging import BaseBagging
        from sklearn.ensemble._forest import BaseForest
        from sklearn.ensemble._gb import BaseGradientBoosting
        from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
        from sklearn.ensemble._hist_gradient_boosting.gradient_boosting import BaseHistGradientBoosting
        from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
        from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder
        from sklearn.tree._tree import Tree
        from sklearn.utils.validation import check_array

        self.Tree = Tree
        self.TreePredictor = TreePredictor
        self.record = PREDICTOR_RECORD_DTYPE
        self.forest = BaseForest
        self.bagging = BaseBagging
        self.boosting = BaseGradientBoosting
        self.hist_boosting = BaseHistGradientBoosting
        self.column_transformer = ColumnTransformer
        self.ordinal_encoder = OrdinalEncoder
        self.function_transformer = FunctionTransformer
        self.check_array = check_array
        self.is_classifier = is_classifier
        self.dummy_classifier = DummyClassifier
        self.dummy_regressor = DummyRegressor
        self.trees = 0
        #: Trees already checked with their estimator, so a bare visit does not count them again.
        self._checked: set[int] = set()

    def run(self, model: Any) -> None:
        """Check everything ``model`` holds; an estimator is named by its path from the model."""
        seen: set[int] = set()
        pending: list[tuple[Any, str]] = [(model, type(model).__name__)]
        while pending:
            obj, where = pending.pop()
            if isinstance(obj, _ATOMS) or (isinstance(obj, np.ndarray) and obj.dtype != object):
                continue
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            try:
                self._check(obj)
            except _Malformed as exc:
                name = where if obj is model else f"{where} ({type(obj).__name__})"
                raise exc.within(f"{name} ") from None
            pending.extend(reversed(list(_parts(obj, where))))

    def _check(self, obj: Any) -> None:
        if isinstance(obj, self.Tree):
            if id(obj) not in self._checked:
                self._tree(obj, n_features=None, owner=None, where="is a malformed tree")
            return
        if isinstance(obj, self.TreePredictor):
            if id(obj) not in self._checked:
                self._predictor(obj, n_features=None, categorical=None, n_bins=None, where="")
            return
        tree = getattr(obj, "tree_", None)
        if isinstance(tree, self.Tree):
            self._tree(tree, n_features=_features_in(obj), owner=obj, where="has a malformed tree")
        # An unfitted ensemble holds no trees yet; a fitted one is checked as a whole.
        if isinstance(obj, self.hist_boosting) and hasattr(obj, "_predictors"):
            self._hist_gradient_boosting(obj)
        if isinstance(obj, self.boosting) and hasattr(obj, "estimators_"):
            self._gradient_boosting(obj)
        if isinstance(obj, self.forest) and hasattr(obj, "estimators_"):
            self._forest(obj)
        if isinstance(obj, self.bagging) and hasattr(obj, "estimators_"):
            self._bagging(obj)

    def _tree(self, tree: Any, *, n_features: int | None, owner: Any, where: str) -> None:
        try:
            _check_tree(tree, n_features, owner)
        except _Malformed as exc:
            raise exc.within(f"{where}: ") from None
        self._checked.add(id(tree))
        self.trees += 1

    def _predictor(
        self,
        predictor: Any,
        *,
        n_features: int | None,
        categorical: Flags | None,
        n_bins: Indices | None,
        where: str,
    ) -> None:
        try:
            _check_predictor(predictor, self.record, n_features, categorical, n_bins)
        except _Malformed as exc:
            raise exc.within(f"has a malformed tree{where}: ") from None
        self._checked.add(id(predictor))
        self.trees += 1

    def _forest(self, forest: Any) -> None:
        """A forest validates its input, then hands it to every tree unchecked."""
        n_features = _features_in(forest)
        for index, estimator in enumerate(forest.estimators_):
            if isinstance(getattr(estimator, "tree_", None), self.Tree):
                _same_features(f"estimators_[{index}]", estimator, n_features)

    def _gradient_boosting(self, model: Any) -> None:
        """The trees' outputs are written, unchecked, into one column per output."""
        grid = model.estimators_
        if not isinstance(grid, np.ndarray) or grid.ndim != 2 or grid.dtype != object:
            raise _Malformed("keeps its trees in something other than a table of stages by outputs")
        per_stage = _count(model.n_trees_per_iteration_, "n_trees_per_iteration_")
        if grid.shape[1] != per_stage:
            raise _Malformed(f"has {grid.shape[1]} trees per stage but computes {per_stage} outputs")
        n_features = _features_in(model)
        for (stage, output), estimator in np.ndenumerate(grid):
            if not isinstance(getattr(estimator, "tree_", None), self.Tree):
                raise _Malformed(f"holds a {type(estimator).__name__} at estimators_[{stage}, {output}]")
            _same_features(f"estimators_[{stage}, {output}]", estimator, n_features)
        start = self._initial_columns(model, per_stage)
        if start != per_stage:
            raise _Malformed(
                f"starts from initial predictions {start} wide, but its trees add {per_stage} outputs"
            )

    def _initial_columns(self, model: Any, per_stage: int) -> int:
        """How wide the initial predictions are that gradient boosting adds its trees' outputs to.

        That width comes from ``init_``; it is worked out for what scikit-learn uses
        unless told otherwise: ``"zero"`` and its dummy estimators.
        """
        init = model.init_
        if isinstance(init, str) and init == "zero":
            return per_stage
        if self.is_classifier(model):
            # scikit-learn before 1.4 spelt the flag of its older loss classes is_multi_class.
            loss = model._loss
            if not bool(getattr(loss, "is_multiclass", getattr(loss, "is_multi_class", False))):
                # One column: the initial probability of the positive class.
                return 1
            if isinstance(init, self.dummy_classifier) and init.n_outputs_ == 1:
                by_prior = init._strategy in ("prior", "stratified")
                return (
                    int(np.asarray(init.class_prior_).size)
                    if by_prior
                    else _count(init.n_classes_, "n_classes_")
                )
        elif isinstance(init, self.dummy_regressor) and init.n_outputs_ == 1:
            return 1
        raise _Malformed(
            f"starts from a {type(init).__name__} (init_), whose output width flaskserve cannot check",
            "Only the default initial estimators are checked: refit without init=, or serve the model "
            "from a pickle you trust with --allow-pickle.",
        )

    def _bagging(self, model: Any) -> None:
        """A tree of a bagging ensemble (IsolationForest) may read only its subset's columns."""
        subsets = getattr(model, "estimators_features_", None)
        if subsets is None:
            return
        if len(subsets) != len(model.estimators_):
            raise _Malformed(f"has {len(model.estimators_)} estimators but {len(subsets)} feature subsets")
        for index, (estimator, subset) in enumerate(zip(model.estimators_, subsets, strict=True)):
            if not isinstance(getattr(estimator, "tree_", None), self.Tree):
                continue
            n_features = _features_in(model)
            columns = np.asarray(subset)
            if (
                columns.ndim != 1
                or columns.dtype.kind not in "iu"
                or bool(((columns < 0) | (columns >= n_features)).any())
            ):
                raise _Malformed(
                    f"has a feature subset estimators_features_[{index}] that is not a list of "
                    f"features 0 to {n_features - 1}"
                )
            taken = _features_in(estimator)
            if taken != columns.size:
                raise _Malformed(
                    f"has a tree estimators_[{index}] that takes {taken} features, "
                    f"but its feature subset has {columns.size}"
                )

    def _hist_gradient_boosting(self, model: Any) -> None:
        n_features = _features_in(model)
        binner = model._bin_mapper
        categorical = np.asarray(binner.is_categorical_).astype(bool)
        n_bins = np.asarray(binner.n_bins_non_missing_).astype(np.int64)
        if categorical.shape != (n_features,) or n_bins.shape != (n_features,):
            raise _Malformed(
                f"has a binner that describes {categorical.size} features, but the model takes {n_features}"
            )
        self._preprocessor(model._preprocessor, n_features)
        per_iteration = _count(model.n_trees_per_iteration_, "n_trees_per_iteration_")
        iterations = model._predictors
        if not isinstance(iterations, list):
            raise _Malformed("keeps its trees in something other than a list of iterations")
        for iteration, predictors in enumerate(iterations):
            if not isinstance(predictors, list) or len(predictors) != per_iteration:
                raise _Malformed(
                    f"has an iteration _predictors[{iteration}] that does not hold {per_iteration} trees"
                )
            for output, predictor in enumerate(predictors):
                if not isinstance(predictor, self.TreePredictor):
                    raise _Malformed(
                        f"holds a {type(predictor).__name__} at _predictors[{iteration}][{output}]"
                    )
                self._predictor(
                    predictor,
                    n_features=n_features,
                    categorical=categorical,
                    n_bins=n_bins,
                    where=f" at _predictors[{iteration}][{output}]",
                )

    def _preprocessor(self, preprocessor: Any, n_features: int) -> None:
        """The columns a categorical model's preprocessor makes are the columns its trees read.

        scikit-learn builds it from an ordinal encoder and a ``check_array`` step, both of
        which keep the column count; any other step could hand the trees fewer columns.
        """
        if preprocessor is None:
            return
        if not isinstance(preprocessor, self.column_transformer):
            raise _Malformed(
                f"has a preprocessor of type {type(preprocessor).__name__}, not a ColumnTransformer"
            )
        if _features_in(preprocessor) != n_features:
            raise _Malformed(
                f"has a preprocessor that takes {_features_in(preprocessor)} features, "
                f"but the model takes {n_features}"
            )
        by_name = getattr(preprocessor, "_transformer_to_input_indices", None)
        made = 0
        for name, step, columns in preprocessor.transformers_:
            if isinstance(step, str) and step == "drop":
                continue
            if not self._keeps_columns(step):
                raise _Malformed(
                    f"has a preprocessor step {clip(repr(name))} ({type(step).__name__}) that may change "
                    "the number of columns"
                )
            chosen = _chosen_columns(columns, n_features)
            if by_name is not None and len(by_name.get(name, ())) != chosen:
                raise _Malformed(f"has a preprocessor step {clip(repr(name))} whose column lists disagree")
            made += chosen
        if made != n_features:
            raise _Malformed(f"has a preprocessor that makes {made} columns, but its trees read {n_features}")

    def _keeps_columns(self, step: Any) -> bool:
        if isinstance(step, str):
            return step == "passthrough"
        if isinstance(step, self.ordinal_encoder):
            return True
        if isinstance(step, self.function_transformer):
            func = step.func
            if isinstance(func, functools.partial) and not func.args:
                func = func.func
            return func is None or func is self.check_array
        return False


def _parts(obj: Any, where: str) -> Iterator[tuple[Any, str]]:
    """The objects ``obj`` holds, each with its place in the model for messages."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield value, f"{where}[{clip(repr(key))}]"
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            yield value, f"{where}[{index}]"
    elif isinstance(obj, (set, frozenset)):
        for value in obj:
            yield value, f"{where}{{…}}"
    elif isinstance(obj, np.ndarray):
        for position, value in np.ndenumerate(obj):
            yield value, f"{where}[{', '.join(str(i) for i in position)}]"
    else:
        attributes = getattr(obj, "__dict__", None)
        if isinstance(attributes, dict):
            for name, value in attributes.items():
                yield value, f"{where}.{name}"


def _check_tree(tree: Any, n_features_in: int | None, owner: Any) -> None:
    """Check one ``sklearn.tree._tree.Tree``, against the estimator that owns it if there is one."""
    n_nodes = int(tree.node_count)
    stored = int(tree.capacity)
    # First of all: the node arrays scikit-learn hands out are node_count long, over a
    # buffer that holds capacity nodes, so reading them is only safe once these agree.
    if n_nodes < 1 or n_nodes != stored:
        raise _Malformed(f"it claims {n_nodes} nodes but stores {stored}")
    n_features = int(tree.n_features)
    if n_features_in is not None and n_features != n_features_in:
        raise _Malformed(f"it splits {n_features} features, but the estimator takes {n_features_in}")
    if n_features < 1:
        raise _Malformed(f"it splits {n_features} features")

    left = np.asarray(tree.children_left, dtype=np.int64)
    right = np.asarray(tree.children_right, dtype=np.int64)
    leaf = left == -1
    _first(leaf & (right != -1), lambda n: f"node {n} has no left child but has right child {right[n]}")
    depth = _check_links(left, right, leaf)
    feature = np.asarray(tree.feature, dtype=np.int64)
    _first(
        ~leaf & ((feature < 0) | (feature >= n_features)),
        lambda n: f"node {n} splits on feature {feature[n]}, but the features are 0 to {n_features - 1}",
    )
    deepest = int(depth.max())
    if int(tree.max_depth) < deepest:
        raise _Malformed(f"it records a depth of {tree.max_depth}, but its nodes are {deepest} deep")

    n_outputs = int(tree.n_outputs)
    n_classes = np.asarray(tree.n_classes, dtype=np.int64)
    if n_outputs < 1 or n_classes.shape != (n_outputs,) or bool((n_classes < 1).any()):
        raise _Malformed(f"its class counts {n_classes.tolist()} do not fit its {n_outputs} outputs")
    widest = int(n_classes.max())
    if int(tree.max_n_classes) != widest:
        raise _Malformed(
            f"it records {tree.max_n_classes} classes at most, but its class counts are {n_classes.tolist()}"
        )
    if tuple(tree.value.shape) != (n_nodes, n_outputs, widest):
        raise _Malformed(
            f"its value array has shape {tuple(tree.value.shape)}, not {(n_nodes, n_outputs, widest)}"
        )
    if owner is not None:
        _agrees_with_owner(owner, n_outputs, n_classes)


def _agrees_with_owner(owner: Any, n_outputs: int, n_classes: Indices) -> None:
    expected_outputs = getattr(owner, "n_outputs_", n_outputs)
    if int(expected_outputs) != n_outputs:
        raise _Malformed(f"its tree has {n_outputs} outputs, but the estimator has {expected_outputs}")
    declared = getattr(owner, "n_classes_", None)
    expected = (
        np.ones(n_outputs, dtype=np.int64)
        if declared is None
        else np.atleast_1d(np.asarray(declared, dtype=np.int64))
    )
    if not np.array_equal(expected, n_classes):
        raise _Malformed(
            f"its tree has class counts {n_classes.tolist()}, but the estimator has {expected.tolist()}"
        )


def _check_predictor(
    predictor: Any, record: Any, n_features: int | None, categorical: Flags | None, n_bins: Indices | None
) -> None:
    """Check one HistGradientBoosting ``TreePredictor``, against its model's binner if known."""
    nodes = predictor.nodes
    if not isinstance(nodes, np.ndarray) or nodes.dtype != record or nodes.ndim != 1 or nodes.size < 1:
        raise _Malformed("its nodes are not an array of scikit-learn's predictor records")
    leaf = nodes["is_leaf"] != 0
    split = ~leaf
    _check_links(nodes["left"].astype(np.int64), nodes["right"].astype(np.int64), leaf)
    if n_features is None or categorical is None or n_bins is None:
        return
    feature = nodes["feature_idx"].astype(np.int64)
    _first(
        split & ((feature < 0) | (feature >= n_features)),
        lambda n: f"node {n} splits on feature {feature[n]}, but the features are 0 to {n_features - 1}",
    )
    # Leaves carry no meaningful feature: index by 0 there, so every lookup below is in range.
    column = np.where(split, feature, 0)
    by_category = split & (nodes["is_categorical"] != 0)
    _first(
        by_category & ~categorical[column],
        lambda n: f"node {n} makes a categorical split on feature {feature[n]}, which is not categorical",
    )
    n_bitsets = min(
        _bitset_rows(predictor.raw_left_cat_bitsets, "raw_left_cat_bitsets"),
        _bitset_rows(predictor.binned_left_cat_bitsets, "binned_left_cat_bitsets"),
    )
    bitset = nodes["bitset_idx"].astype(np.int64)
    _first(
        by_category & (bitset >= n_bitsets),
        lambda n: f"node {n} uses category bitset {bitset[n]}, but the tree has {n_bitsets}",
    )
    by_number = split & ~by_category
    threshold = nodes["bin_threshold"].astype(np.int64)
    _first(
        by_number & (threshold >= n_bins[column]),
        lambda n: (
            f"node {n} splits feature {feature[n]} at bin {threshold[n]}, "
            f"but that feature has {n_bins[column[n]]} bins"
        ),
    )
    _first(by_number & np.isnan(nodes["num_threshold"]), lambda n: f"node {n} splits at a threshold of NaN")


def _bitset_rows(bitsets: Any, name: str) -> int:
    """How many category bitsets a predictor has; each is 8 words of 32 bits, one bit per bin."""
    if (
        not isinstance(bitsets, np.ndarray)
        or bitsets.dtype != np.uint32
        or bitsets.ndim != 2
        or bitsets.shape[1] != 8
    ):
        raise _Malformed(f"its {name} is not a table of 8-word bitsets")
    return int(bitsets.shape[0])


def _check_links(left: Indices, right: Indices, leaf: Flags) -> Indices:
    """Check that the child links make one tree rooted at node 0, and return each node's depth.

    Each split's children must be among nodes 1 to n-1 and each of those nodes the
    child of exactly one split; then every node has one parent, and the links form a
    tree unless some nodes sit on a loop the root never reaches. Pointer doubling
    finds those: each round, a node's known ancestor jumps to that ancestor's known
    ancestor, so after log2(n) rounds every node the root reaches knows the root.
    """
    n_nodes = left.size
    split = ~leaf
    _first(
        split & ((left < 1) | (left >= n_nodes)),
        lambda n: f"node {n} has left child {left[n]}, but a child must be one of nodes 1 to {n_nodes - 1}",
    )
    _first(
        split & ((right < 1) | (right >= n_nodes)),
        lambda n: f"node {n} has right child {right[n]}, but a child must be one of nodes 1 to {n_nodes - 1}",
    )
    parents = np.flatnonzero(split)
    children = np.concatenate((left[parents], right[parents]))
    times = np.bincount(children, minlength=n_nodes)
    _first(times > 1, lambda n: f"node {n} is the child of more than one node")
    _first(times[1:] == 0, lambda n: f"node {n + 1} is the child of no node")

    ancestor = np.zeros(n_nodes, dtype=np.int64)
    ancestor[children] = np.concatenate((parents, parents))
    # distance[i] is how far ancestor[i] is above node i; the root is its own ancestor, at 0.
    distance = np.ones(n_nodes, dtype=np.int64)
    distance[0] = 0
    for _ in range((n_nodes - 1).bit_length()):
        if not ancestor.any():
            break
        distance = distance + distance[ancestor]
        ancestor = ancestor[ancestor]
    _first(ancestor != 0, lambda n: f"node {n} cannot be reached from the root: its links form a loop")
    return distance


def _first(bad: Flags, problem: Callable[[int], str]) -> None:
    """Refuse with ``problem(node)`` for the first node flagged in ``bad``, if any."""
    flagged = np.flatnonzero(bad)
    if flagged.size:
        raise _Malformed(problem(int(flagged[0])))


def _features_in(estimator: Any) -> int:
    """The feature count scikit-learn checks the estimator's input against."""
    value = getattr(estimator, "n_features_in_", None)
    if value is None:
        raise _Malformed("does not record how many features it takes (n_features_in_)")
    return _count(value, "n_features_in_")


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise _Malformed(f"records {name} = {clip(repr(value))}, not a positive whole number")
    return int(value)


def _same_features(where: str, estimator: Any, n_features: int) -> None:
    taken = _features_in(estimator)
    if taken != n_features:
        raise _Malformed(f"has a tree {where} that takes {taken} features, but the model takes {n_features}")


def _chosen_columns(columns: Any, n_features: int) -> int:
    """How many columns a ColumnTransformer step selects: a mask of all features, or indices."""
    chosen = np.asarray(columns)
    if chosen.dtype == bool and chosen.shape == (n_features,):
        return int(chosen.sum())
    if chosen.ndim == 1 and chosen.dtype.kind in "iu":
        if bool(((chosen < -n_features) | (chosen >= n_features)).any()):
            raise _Malformed("has a preprocessor step that selects columns the input does not have")
        return int(chosen.size)
    raise _Malformed("has a preprocessor step whose column selection is neither a mask nor a list of indices")
