"""Checks on XGBoost and LightGBM model files, made before the library parses them.

Both libraries read their own files as trusted. Sizes are believed and allocated
before the data is there, and the indices a tree stores (children, split features,
output groups, category ranges) are followed at prediction time without bounds
checks. A few bytes changed in a file are enough for the load or the first
prediction to read outside an array, so the process crashes, or to walk a loop of
nodes forever, or to allocate gigabytes. The file is read here first, with a parser
that checks every size against the bytes that are there, and a file holding
anything the library would trust blindly is refused:

- a count the library sizes arrays or outputs by: features (at most
  :data:`~flaskserve.models.loaders.MAX_FEATURES`), classes and targets (at most
  :data:`~flaskserve.models.loaders.MAX_OUTPUTS`), trees per iteration, nodes;
- every array a tree holds has exactly one entry per node (per leaf);
- links: every child of a split is a node of the tree and no node is the child of
  two splits, so every walk from the root ends at a leaf;
- every split feature is below the feature count, every tree adds into an output
  the model has, every categorical split points into its own category list;
- XGBoost's category bitsets, sized by the largest category a split lists, fit in
  :func:`~flaskserve.models.loaders.expansion_budget` of the file's size.

The XGBoost parser accepts the UBJSON and JSON that XGBoost writes and reads, and
refuses the rest, including a key given twice: the library would keep one of the
two and this check could be looking at the other. LightGBM's text is read line by
line as LightGBM reads it, and the ``tree_sizes`` index is dropped from the text the
library gets: with it, LightGBM parses trees in parallel threads, and a tree that
fails to parse there aborts the process instead of raising an error.

The checks are numpy operations over whole arrays, milliseconds for a model of
thousands of trees; their memory is that of the parsed document, a few times the
file's size (a JSON file's numbers become Python objects).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from flaskserve.errors import ModelLoadError, clip
from flaskserve.models.loaders import MAX_FEATURES, MAX_OUTPUTS, expansion_budget

Indices = npt.NDArray[np.int64]

_ADVICE = "The file is damaged or was crafted; save the model again from the booster you trained."
#: Deeper nesting than any model file has; XGBoost's parser recurses once per level.
_MAX_DEPTH = 64
#: LightGBM reads at most this many lines of one tree.
_LIGHTGBM_TREE_LINES = 22
_INT = re.compile(r"-?[0-9]{1,19}")
_COUNT = re.compile(r"[0-9]{1,19}")
_LINE_END = re.compile(r"\r\n|\r|\n")


class _Malformed(Exception):
    """What is wrong with the file, worded to follow "refusing to load MODEL: "."""


def _refuse(display_name: str, check: Callable[[], Any]) -> Any:
    try:
        return check()
    except _Malformed as exc:
        raise ModelLoadError(f"refusing to load {display_name}: {exc}. {_ADVICE}") from None
    except Exception as exc:
        problem = f"it could not be checked ({type(exc).__name__})"
        raise ModelLoadError(f"refusing to load {display_name}: {problem}. {_ADVICE}") from exc


def _first(bad: npt.NDArray[np.bool_], problem: Callable[[int], str]) -> None:
    """Refuse with ``problem(position)`` for the first position flagged in ``bad``, if any."""
    flagged = np.flatnonzero(bad)
    if flagged.size:
        raise _Malformed(problem(int(flagged[0])))


def _check_size(n_features: int, n_outputs: int) -> None:
    if n_features > MAX_FEATURES:
        raise _Malformed(f"it takes {n_features} features; flaskserve serves at most {MAX_FEATURES}")
    if n_outputs > MAX_OUTPUTS:
        raise _Malformed(
            f"it answers {n_outputs} classes or targets; flaskserve serves at most {MAX_OUTPUTS}"
        )


def _check_links(children: Indices, n_nodes: int, where: str) -> None:
    """Every child (of every split) is one of nodes 1 to n-1, and no node is the child of two splits.

    The root is then nobody's child and every node has at most one parent, so a walk
    from the root never comes back to a node it passed: it ends at a leaf.
    """
    _first(
        (children < 1) | (children >= n_nodes),
        lambda i: f"{where} has a split whose child is node {children[i]}, not one of its {n_nodes} nodes",
    )
    times = np.bincount(children, minlength=n_nodes)
    _first(times > 1, lambda n: f"{where} has node {n} as the child of more than one split")


# -- XGBoost ------------------------------------------------------------------------------------


def check_xgboost(data: bytes, display_name: str) -> None:
    """Refuse an XGBoost file (UBJSON or JSON) that XGBoost could not load and walk safely."""
    _refuse(display_name, lambda: _check_learner(_read_document(data), expansion_budget(len(data))))


def xgboost_encoding(data: bytes) -> Literal["json", "ubj"] | None:
    """Which of XGBoost's documents ``data`` is, told apart as XGBoost does; ``None`` for neither.

    ``{"`` starts JSON; ``{`` and a letter (a key's length marker) UBJSON.
    """
    if data[:2] == b'{"':
        return "json"
    if data[:1] == b"{" and data[1:2].isalpha():
        return "ubj"
    return None


def _read_document(data: bytes) -> dict[str, Any]:
    encoding = xgboost_encoding(data)
    if encoding == "json":
        document = json.loads(data, object_pairs_hook=_unique_keys)
    elif encoding == "ubj":
        document = _UBJSON(data).document()
    else:
        raise _Malformed("it is neither XGBoost's JSON nor its UBJSON")
    if not isinstance(document, dict):
        raise _Malformed("it does not hold an object")
    return document


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Malformed("an object gives the same key twice")
    return result


class _UBJSON:
    """The UBJSON XGBoost reads: its markers only, typed arrays as numpy arrays, every size checked."""

    #: Typed arrays: numbers of one type, without markers.
    _TYPED: dict[bytes, str] = {
        b"i": ">i1",
        b"U": ">u1",
        b"I": ">i2",
        b"l": ">i4",
        b"L": ">i8",
        b"d": ">f4",
        b"D": ">f8",
    }
    _NUMBERS: dict[bytes, str] = {**_TYPED, b"C": ">i1"}

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def document(self) -> Any:
        return self._value(0)

    def _take(self, size: int) -> bytes:
        if size < 0 or size > len(self._data) - self._at:
            raise _Malformed("a size in it runs past the end of the file")
        chunk = self._data[self._at : self._at + size]
        self._at += size
        return chunk

    def _size(self) -> int:
        """A count or length: XGBoost reads only int64 ones ('L')."""
        if self._take(1) != b"L":
            raise _Malformed("a count in it is not the 64-bit integer XGBoost reads")
        size = int.from_bytes(self._take(8), "big", signed=True)
        if size < 0 or size > len(self._data) - self._at:
            raise _Malformed("a count in it is larger than the rest of the file")
        return size

    def _string(self) -> str:
        return self._take(self._size()).decode("utf-8")

    def _value(self, depth: int) -> Any:
        marker = self._take(1)
        if marker in self._NUMBERS:
            dtype = np.dtype(self._NUMBERS[marker])
            return np.frombuffer(self._take(dtype.itemsize), dtype)[0].item()
        if marker == b"S":
            return self._string()
        if marker in (b"T", b"F", b"Z"):
            return {b"T": True, b"F": False, b"Z": None}[marker]
        if marker not in (b"[", b"{"):
            raise _Malformed(f"it holds a value XGBoost does not read (marker {marker!r})")
        if depth >= _MAX_DEPTH:
            raise _Malformed(f"it nests more than {_MAX_DEPTH} levels deep")
        return self._array(depth + 1) if marker == b"[" else self._object(depth + 1)

    def _peek(self) -> bytes:
        if self._at >= len(self._data):
            raise _Malformed("it ends in the middle of a value")
        return self._data[self._at : self._at + 1]

    def _array(self, depth: int) -> Any:
        if self._peek() == b"$":
            self._take(1)
            kind = self._take(1)
            if kind not in self._TYPED or self._take(1) != b"#":
                raise _Malformed("it holds a typed array XGBoost does not read")
            dtype = np.dtype(self._TYPED[kind])
            count = self._size()
            return np.frombuffer(self._take(count * dtype.itemsize), dtype).astype(dtype.newbyteorder("="))
        if self._peek() == b"#":
            self._take(1)
            return [self._value(depth) for _ in range(self._size())]
        items = []
        while self._peek() != b"]":
            items.append(self._value(depth))
        self._take(1)
        return items

    def _object(self, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while self._peek() != b"}":
            key = self._string()
            if key in result:
                raise _Malformed("an object gives the same key twice")
            result[key] = self._value(depth)
        self._take(1)
        return result


def _object(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise _Malformed(f"{where} has no '{key}' object")
    return value


def _param(params: dict[str, Any], key: str, where: str, *, default: str | None = None) -> int:
    """One of XGBoost's numeric parameters, which it stores as strings of digits."""
    value = params.get(key, default)
    if not isinstance(value, str) or not _COUNT.fullmatch(value):
        raise _Malformed(f"{where} records {key} = {clip(repr(value))}, not a whole number")
    return int(value)


def _ints(values: Any, name: str, where: str) -> Indices:
    array = np.asarray(values if values is not None else [])
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iub"):
        raise _Malformed(f"{where} has a {name} that is not a list of whole numbers")
    return array.astype(np.int64)


def _length(parent: dict[str, Any], name: str, size: int, where: str) -> None:
    """``parent[name]`` is an array of exactly ``size`` entries."""
    values = parent.get(name)
    count = len(values) if isinstance(values, (list, np.ndarray)) else 0
    if count != size or values is None:
        raise _Malformed(f"{where} has {count} {name} for its {size} entries")


def _sized(parent: dict[str, Any], name: str, size: int, where: str) -> Indices:
    """``parent[name]`` is an array of exactly ``size`` whole numbers."""
    _length(parent, name, size, where)
    return _ints(parent[name], name, where)


def _check_learner(document: dict[str, Any], bitset_budget: int) -> None:
    learner = _object(document, "learner", "the file")
    params = _object(learner, "learner_model_param", "the model")
    n_features = _param(params, "num_feature", "the model")
    n_classes = _param(params, "num_class", "the model", default="0")
    n_targets = _param(params, "num_target", "the model", default="1")
    _check_size(n_features, max(n_classes, n_targets))
    booster = _object(learner, "gradient_booster", "the model")
    name = booster.get("name")
    if name == "gblinear":
        return  # one weight per feature and output, whose count XGBoost checks itself
    if name == "dart":
        model = _object(_object(booster, "gbtree", "the dart booster"), "model", "the dart booster")
    elif name == "gbtree":
        model = _object(booster, "model", "the booster")
    else:
        raise _Malformed(f"its booster is {clip(repr(name))}, not gbtree, dart or gblinear")
    trees = model.get("trees")
    if not isinstance(trees, list):
        raise _Malformed("the booster has no list of trees")
    n_trees = len(trees)
    forest = _object(model, "gbtree_model_param", "the booster")
    if _param(forest, "num_trees", "the booster") != n_trees:
        raise _Malformed(f"the booster records {forest.get('num_trees')!r} trees but holds {n_trees}")
    if _param(forest, "num_parallel_tree", "the booster", default="1") < 1:
        raise _Malformed("the booster records fewer than one tree per round")
    outputs = max(n_classes, n_targets, 1)
    groups = _sized(model, "tree_info", n_trees, "the booster")
    _first(
        (groups < 0) | (groups >= outputs),
        lambda i: f"tree {i} adds into output {groups[i]}, but the model has {outputs}",
    )
    if "iteration_indptr" in model:
        bounds = _ints(model["iteration_indptr"], "iteration_indptr", "the booster")
        if bounds.size == 0 or bounds[0] != 0 or bounds[-1] != n_trees or bool((np.diff(bounds) < 0).any()):
            raise _Malformed("the booster's rounds (iteration_indptr) do not cover its trees in order")
    if name == "dart":
        _length(booster, "weight_drop", n_trees, "the dart booster")
    bitsets = 0
    for index, tree in enumerate(trees):
        if not isinstance(tree, dict):
            raise _Malformed(f"tree {index} is not an object")
        bitsets += _check_xgboost_tree(tree, index, n_features, n_targets)
        if bitsets > bitset_budget:
            raise _Malformed(
                f"its categorical splits list categories up to values that need {bitsets} bytes of bitsets, "
                f"more than {bitset_budget} for a file of its size"
            )


def _check_xgboost_tree(tree: dict[str, Any], index: int, n_features: int, n_targets: int) -> int:
    """Check one tree; return the bytes XGBoost will spend on its category bitsets."""
    where = f"tree {index}"
    if tree.get("id") != index:
        raise _Malformed(f"{where} is stored as tree {clip(repr(tree.get('id')))}")
    shape = _object(tree, "tree_param", where)
    n_nodes = _param(shape, "num_nodes", where)
    leaf_size = _param(shape, "size_leaf_vector", where, default="1")
    if n_nodes < 1:
        raise _Malformed(f"{where} has no nodes")
    if leaf_size > 1 and leaf_size != n_targets:
        raise _Malformed(f"{where} has leaves of {leaf_size} values for a model of {n_targets} targets")
    left = _sized(tree, "left_children", n_nodes, where)
    right = _sized(tree, "right_children", n_nodes, where)
    features = _sized(tree, "split_indices", n_nodes, where)
    for name in ("split_conditions", "default_left"):
        _length(tree, name, n_nodes, where)
    for name in ("loss_changes", "sum_hessian"):
        if name in tree:
            _length(tree, name, n_nodes, where)
    kinds = np.zeros(n_nodes, np.int64)
    if "split_type" in tree:
        kinds = _sized(tree, "split_type", n_nodes, where)
    _length(tree, "base_weights", n_nodes * max(leaf_size, 1), where)
    leaf = left == -1
    split = ~leaf
    if leaf_size > 1:
        weights = tree.get("leaf_weights")
        n_leaves = len(weights) // leaf_size if isinstance(weights, (list, np.ndarray)) else 0
        _first(
            leaf & ((right < 0) | (right >= n_leaves)),
            lambda n: f"{where} has leaf {n} pointing at weights {right[n]}, not one of its {n_leaves}",
        )
    else:
        _first(leaf & (right != -1), lambda n: f"{where} has leaf {n} with a right child")
    _check_links(np.concatenate((left[split], right[split])), n_nodes, where)
    if "parents" in tree:
        _check_parents(_sized(tree, "parents", n_nodes, where), left, right, split, where)
    _first(
        split & ((features < 0) | (features >= n_features)),
        lambda n: f"{where} splits node {n} on feature {features[n]}, but the model takes {n_features}",
    )
    _first((kinds < 0) | (kinds > 1), lambda n: f"{where} has node {n} of split type {kinds[n]}")
    return _check_xgboost_categories(tree, where, split & (kinds == 1))


def _check_parents(
    parents: Indices, left: Indices, right: Indices, split: npt.NDArray[np.bool_], where: str
) -> None:
    """Each child names its split as its parent, and every node's line of parents ends at the root.

    XGBoost follows these links too, unchecked: a parent out of range crashes it. Pruned
    nodes, which no split points at any more, keep the parent they had.
    """
    n_nodes = parents.size
    if int(parents[0]) not in (-1, 2**31 - 1):
        raise _Malformed(f"{where} gives its root a parent")
    _first(
        (parents[1:] < 0) | (parents[1:] >= n_nodes),
        lambda n: f"{where} gives node {n + 1} parent {parents[n + 1]}, not one of its {n_nodes} nodes",
    )
    nodes = np.flatnonzero(split)
    children = np.concatenate((left[nodes], right[nodes]))
    owners = np.concatenate((nodes, nodes))
    _first(parents[children] != owners, lambda i: f"{where} has node {children[i]} naming another parent")
    ancestor = parents.copy()
    ancestor[0] = 0
    for _ in range(n_nodes.bit_length()):
        ancestor = ancestor[ancestor]
    _first(ancestor != 0, lambda n: f"{where} has node {n} whose parents never reach the root")


def _check_xgboost_categories(tree: dict[str, Any], where: str, categorical: npt.NDArray[np.bool_]) -> int:
    nodes = _ints(tree.get("categories_nodes"), "categories_nodes", where)
    starts = _ints(tree.get("categories_segments"), "categories_segments", where)
    sizes = _ints(tree.get("categories_sizes"), "categories_sizes", where)
    values = _ints(tree.get("categories"), "categories", where)
    if not nodes.size == starts.size == sizes.size:
        raise _Malformed(f"{where} lists {nodes.size} categorical nodes but {starts.size} category ranges")
    n_nodes = categorical.size
    listed = np.zeros(n_nodes, dtype=bool)
    inside = (nodes >= 0) & (nodes < n_nodes)
    _first(~inside, lambda i: f"{where} lists categories for node {nodes[i]}, not one of its {n_nodes}")
    listed[nodes] = True
    if np.unique(nodes).size != nodes.size or bool((listed != categorical).any()):
        raise _Malformed(f"{where} does not list categories for exactly its categorical splits")
    ends = starts + sizes
    _first(
        (starts < 0) | (sizes < 0) | (ends > values.size),
        lambda i: f"{where} has a category range of node {nodes[i]} outside its {values.size} categories",
    )
    _first(
        (values < 0) | (values >= 2**31),
        lambda i: f"{where} lists category {values[i]}, not one XGBoost can hold",
    )
    # One bit per category up to the largest one a split lists, in 32-bit words.
    largest = [
        int(values[s:e].max()) if e > s else 0 for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
    ]
    return sum((top // 32 + 1) * 4 for top in largest)


# -- LightGBM -----------------------------------------------------------------------------------


def check_lightgbm(text: str, display_name: str) -> str:
    """Refuse a LightGBM model text LightGBM could not load and walk safely; return the text to load.

    The text returned is the same model without its ``tree_sizes`` line.
    """
    result: str = _refuse(display_name, lambda: _check_lightgbm(text))
    return result


def _check_lightgbm(text: str) -> str:
    if "\x00" in text:
        raise _Malformed("it holds a NUL character, where LightGBM would stop reading")
    lines = _LINE_END.split(text)
    start = next((i for i, line in enumerate(lines) if line.startswith("Tree=")), len(lines))
    header = _key_values((line for line in lines[:start] if line), "the header", free="feature_names")
    n_features = _lightgbm_count(header, "max_feature_idx", "the header") + 1
    n_classes = _lightgbm_count(header, "num_class", "the header")
    per_round = _lightgbm_count(header, "num_tree_per_iteration", "the header", default=str(n_classes))
    _check_size(n_features, n_classes)
    if not 1 <= per_round <= n_classes:
        raise _Malformed(f"it grows {per_round} trees per round for {n_classes} classes")
    claimed = [t for t in header.get("objective", "").split(" ") if t.startswith("num_class:")]
    if claimed and claimed != [f"num_class:{n_classes}"]:
        raise _Malformed(f"its objective claims {clip(' '.join(claimed))}; the model has {n_classes} classes")
    at = start
    index = 0
    while at < len(lines):
        if not lines[at]:
            at += 1
            continue
        if not lines[at].startswith("Tree="):
            break
        end = at + 1
        while end < len(lines) and lines[end]:
            end += 1
        # LightGBM reads a tree's lines until an empty one; at the end of the text there is none.
        if end >= len(lines) - 1 or end - at - 1 > _LIGHTGBM_TREE_LINES:
            raise _Malformed(
                f"tree {index} does not end with an empty line within {_LIGHTGBM_TREE_LINES} lines"
            )
        fields = _key_values(lines[at + 1 : end], f"tree {index}")
        _check_lightgbm_tree(fields, f"tree {index}", n_features)
        index += 1
        at = end
    return "\n".join(line for i, line in enumerate(lines) if i >= start or not line.startswith("tree_sizes="))


def _key_values(lines: Iterable[str], where: str, *, free: str = "") -> dict[str, str]:
    """``key=value`` lines (or a bare word); a key given twice, or a second '=', is refused."""
    fields: dict[str, str] = {}
    for line in lines:
        key, equals, value = line.partition("=")
        if not key or ("=" in value and key != free) or (not equals and where != "the header"):
            raise _Malformed(f"{where} has a line LightGBM would misread: {clip(line)!r}")
        if key in fields:
            raise _Malformed(f"{where} gives {clip(key)} twice")
        fields[key] = value
    return fields


def _lightgbm_count(fields: dict[str, str], key: str, where: str, *, default: str | None = None) -> int:
    value = fields.get(key, default)
    if value is None or not _COUNT.fullmatch(value):
        raise _Malformed(f"{where} records {key} = {clip(repr(value))}, not a whole number")
    return int(value)


def _tokens(fields: dict[str, str], key: str, size: int, where: str, *, required: bool = True) -> list[str]:
    """A list of ``size`` values, split as LightGBM splits it (single spaces, empty tokens skipped)."""
    if key not in fields:
        if required and size:
            raise _Malformed(f"{where} has no {key}")
        return []
    tokens = [t for t in fields[key].split(" ") if t]
    if len(tokens) != size:
        raise _Malformed(f"{where} has {len(tokens)} {key} for its {size} entries")
    return tokens


def _lightgbm_ints(
    tokens: list[str], key: str, where: str, *, low: int = -(2**31), high: int = 2**31
) -> Indices:
    """Whole numbers in ``[low, high)``: LightGBM stores them in 32 bits, and would wrap others around."""
    if not all(_INT.fullmatch(t) for t in tokens):
        raise _Malformed(f"{where} has a {key} that is not a list of whole numbers")
    values = np.array([int(t) for t in tokens], dtype=np.int64)
    _first((values < low) | (values >= high), lambda i: f"{where} has {key} {values[i]}, out of range")
    return values


def _check_lightgbm_tree(fields: dict[str, str], where: str, n_features: int) -> None:
    n_leaves = _lightgbm_count(fields, "num_leaves", where)
    n_categories = _lightgbm_count(fields, "num_cat", where)
    linear = _lightgbm_count(fields, "is_linear", where, default="0")
    if n_leaves < 1 or linear > 1:
        raise _Malformed(f"{where} records {n_leaves} leaves and is_linear={linear}")
    _tokens(fields, "leaf_value", n_leaves, where)
    if n_leaves == 1 and not linear:
        return  # LightGBM reads nothing more of a tree that is one leaf
    for key in ("leaf_weight", "leaf_count", "leaf_const"):
        _tokens(fields, key, n_leaves, where, required=False)
    n_splits = n_leaves - 1
    if n_splits:
        left = _lightgbm_ints(_tokens(fields, "left_child", n_splits, where), "left_child", where)
        right = _lightgbm_ints(_tokens(fields, "right_child", n_splits, where), "right_child", where)
        features = _lightgbm_ints(_tokens(fields, "split_feature", n_splits, where), "split_feature", where)
        thresholds = _tokens(fields, "threshold", n_splits, where)
        given = _tokens(fields, "decision_type", n_splits, where, required=False)
        kinds = _lightgbm_ints(given, "decision_type", where)
        for key in ("split_gain", "internal_value", "internal_weight", "internal_count"):
            _tokens(fields, key, n_splits, where, required=False)
        # A leaf is written as ~leaf (negative); leaves are numbered after the splits here.
        children = np.concatenate((left, right))
        leaves = children < 0
        _first(
            np.where(leaves, ~children >= n_leaves, children >= n_splits),
            lambda i: (
                f"{where} has a split whose child is {'leaf' if leaves[i] else 'node'} "
                f"{~children[i] if leaves[i] else children[i]}, which it does not have"
            ),
        )
        _check_links(np.where(leaves, n_splits + ~children, children), n_splits + n_leaves, where)
        _first(
            (features < 0) | (features >= n_features),
            lambda n: f"{where} splits node {n} on feature {features[n]}, but the model takes {n_features}",
        )
        _first((kinds < 0) | (kinds > 127), lambda n: f"{where} has node {n} of decision type {kinds[n]}")
        _check_lightgbm_splits(where, thresholds, (kinds & 1).astype(bool), n_categories)
    if n_categories:
        _check_lightgbm_categories(fields, where, n_categories)
    if linear:
        counts = _lightgbm_ints(_tokens(fields, "num_features", n_leaves, where), "num_features", where)
        _first(counts < 0, lambda n: f"{where} has leaf {n} with {counts[n]} features")
        total = int(counts.sum())
        used = _lightgbm_ints(_tokens(fields, "leaf_features", total, where), "leaf_features", where)
        _tokens(fields, "leaf_coeff", total, where)
        _first(
            (used < 0) | (used >= n_features),
            lambda i: f"{where} has a linear leaf on feature {used[i]}, but the model takes {n_features}",
        )


def _check_lightgbm_splits(
    where: str, thresholds: list[str], categorical: npt.NDArray[np.bool_], n_lists: int
) -> None:
    """A categorical split's threshold is the number of one of the tree's category lists."""
    if not categorical.any():
        return
    chosen = np.array([int(t) if _COUNT.fullmatch(t) else -1 for t in thresholds], dtype=np.int64)
    _first(
        categorical & ((chosen < 0) | (chosen >= n_lists)),
        lambda n: (
            f"{where} has a categorical split at node {n} naming category list "
            f"{clip(thresholds[n])}, not one of its {n_lists}"
        ),
    )


def _check_lightgbm_categories(fields: dict[str, str], where: str, n_lists: int) -> None:
    """The category lists lie in order within the bitset words, which LightGBM sizes by the last bound."""
    bounds = _lightgbm_ints(_tokens(fields, "cat_boundaries", n_lists + 1, where), "cat_boundaries", where)
    n_words = len([t for t in fields.get("cat_threshold", "").split(" ") if t])
    if bounds[0] != 0 or bounds[-1] != n_words or bool((np.diff(bounds) < 0).any()):
        raise _Malformed(f"{where} has category lists (cat_boundaries) outside its {n_words} bitset words")
    words = _tokens(fields, "cat_threshold", n_words, where)
    _lightgbm_ints(words, "cat_threshold", where, low=0, high=2**32)
