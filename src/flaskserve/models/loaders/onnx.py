"""ONNX files: a graph of operators and weights, run by ONNX Runtime.

An ONNX file is data: loading one runs no Python code, so it needs no trust.
The graph is wrapped in an adapter with scikit-learn's attributes and methods,
so signature inference and every protocol treat it like any other estimator.

Two input layouts are understood, the two that converters write:

- one 2-D input ``[rows, features]`` (a converter given a NumPy array), and
- one input per feature, each ``[rows, 1]`` (skl2onnx given a DataFrame); the
  input names are then the feature names, and each column is fed to its input.

A classifier's probabilities come either as a tensor ``[rows, classes]`` or, from
skl2onnx's default ZipMap, as one ``{class: probability}`` map per row.

A model is its one file. ONNX lets a tensor keep its data in another file (external
data, for models past protobuf's 2 GB), named by a path inside the model; such a
model is refused before the runtime sees it. The path is the file's to choose: it
may be absolute, climb out with ``..`` or go through a symlink; ONNX Runtime began
refusing such paths only in its 2026 releases, and older ones, which flaskserve
supports, read the file wherever it points. Even inside the model's folder the side
file escapes the digest the operator pins and the audit log records, so the weights
could change while the digest stays the same. The runtime is then given the file's
bytes, never its path, so it has no folder to look in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from flaskserve.errors import ModelLoadError, clip
from flaskserve.models.loaders import MAX_FEATURES, LoadedFile, require
from flaskserve.models.trust import ModelFile, TrustPolicy

#: ONNX Runtime's type strings for the numeric tensors a request can fill.
_ELEMENT_TYPES: dict[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(double)": np.dtype(np.float64),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int16)": np.dtype(np.int16),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(bool)": np.dtype(np.bool_),
}
#: Names converters give a model's main answer (skl2onnx: ``label``, ``output_label``, ``variable``).
_LABEL_NAMES = ("label", "output_label", "variable")
#: Names converters give class probabilities.
_PROBABILITY_NAMES = ("probabilities", "output_probability", "probability")
#: Attributes of ONNX-ML classifier nodes (LinearClassifier, TreeEnsembleClassifier, SVMClassifier,
#: ZipMap, ...) that list the class labels, in output column order.
_CLASS_LABEL_ATTRIBUTES = ("classlabels_strings", "classlabels_int64s", "classlabels_ints")


@dataclass(frozen=True)
class _Input:
    name: str
    dtype: np.dtype[Any]
    #: 1 for an input declared as a flat vector ``[rows]``, else 2.
    rank: int = 2

    def take(self, block: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Cast a block of columns to this input's type and rank."""
        shaped = block[:, 0] if self.rank == 1 else block
        return shaped.astype(self.dtype, copy=False)


class OnnxModel:
    """An ONNX graph seen as a scikit-learn regressor: ``predict`` returns its main output."""

    def __init__(
        self,
        session: Any,
        inputs: Sequence[_Input],
        n_features: int | None,
        label_output: str,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        self._session = session
        self._inputs = tuple(inputs)
        self._label_output = label_output
        #: None when the graph leaves the width open; then the settings must name the features.
        self.n_features_in_ = n_features
        if feature_names is not None:
            self.feature_names_in_ = np.array(feature_names, dtype=object)

    def predict(self, features: npt.NDArray[Any]) -> npt.NDArray[Any]:
        [label] = self._session.run([self._label_output], self._feed(features))
        result = np.asarray(label)
        # A regressor's single target comes as [rows, 1]; scikit-learn answers [rows].
        return result.ravel() if result.ndim == 2 and result.shape[1] == 1 else result

    def _feed(self, features: npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
        return _feed(self._inputs, np.asarray(features))


class OnnxClassifier(OnnxModel):
    """An ONNX classifier: ``predict`` returns labels, ``predict_proba`` the probability columns."""

    def __init__(
        self,
        session: Any,
        inputs: Sequence[_Input],
        n_features: int | None,
        label_output: str,
        probability_output: str,
        classes: Sequence[Any],
        *,
        zipmap: bool,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(session, inputs, n_features, label_output, feature_names)
        self._probability_output = probability_output
        self._zipmap = zipmap
        self._class_keys = list(classes)
        self.classes_ = np.array(classes)

    def predict_proba(self, features: npt.NDArray[Any]) -> npt.NDArray[Any]:
        [probabilities] = self._session.run([self._probability_output], self._feed(features))
        if self._zipmap:
            # One {class: probability} dict per row; the columns follow classes_.
            return np.array([[row[key] for key in self._class_keys] for row in probabilities])
        return np.asarray(probabilities)


class OnnxLoader:
    suffixes: tuple[str, ...] = (".onnx",)
    frameworks: tuple[str, ...] = ("onnxruntime",)

    def load(self, file: ModelFile, *, display_name: str, trust: TrustPolicy) -> LoadedFile:
        ort = require("onnxruntime", "onnx")
        onnx = require("onnx", "onnx")
        try:
            model = onnx.load_model_from_string(file.data)
        except Exception as exc:
            raise ModelLoadError(f"{display_name} is not an ONNX model: {type(exc).__name__}") from exc
        _refuse_external_data(model, onnx.TensorProto.EXTERNAL, display_name)
        try:
            options = ort.SessionOptions()
            # One thread per call: gunicorn's workers and threads already use every core, and a
            # thread pool built before the fork would not exist in the workers.
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(file.data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # a damaged or unsupported graph
            raise ModelLoadError(
                f"{display_name} is not an ONNX model this runtime can run: {type(exc).__name__}"
            ) from exc
        return LoadedFile(model=_adapt(session, model.graph, display_name), platform="onnx_onnxv1")


def _refuse_external_data(model: Any, external: int, display_name: str) -> None:
    """Refuse a model any of whose tensors keeps its data in another file."""
    for tensor in _tensors(model):
        if tensor.data_location == external or len(tensor.external_data):
            raise ModelLoadError(
                f"refusing to load {display_name}: its tensor '{clip(tensor.name)}' keeps its data in "
                "another file, and flaskserve serves an ONNX model from its one file only. Save the "
                "weights inside it: onnx.save_model(model, path, save_as_external_data=False)"
            )


def _tensors(model: Any) -> Iterator[Any]:
    """Every tensor of the model: initializers and attributes, in every graph, subgraph and function."""
    graphs = [model.graph]
    for info in model.training_info:
        graphs += [info.initialization, info.algorithm]
    nodes = [node for function in model.functions for node in function.node]
    while graphs or nodes:
        if graphs:
            graph = graphs.pop()
            yield from graph.initializer
            for sparse in graph.sparse_initializer:
                yield from (sparse.values, sparse.indices)
            nodes.extend(graph.node)
            continue
        for attribute in nodes.pop().attribute:
            yield attribute.t
            yield from attribute.tensors
            for sparse in (attribute.sparse_tensor, *attribute.sparse_tensors):
                yield from (sparse.values, sparse.indices)
            graphs.append(attribute.g)
            graphs.extend(attribute.graphs)


def _adapt(session: Any, graph: Any, display_name: str) -> OnnxModel:
    inputs, n_features, feature_names = _read_inputs(session.get_inputs(), display_name)
    outputs = session.get_outputs()
    label = _pick_label(outputs)
    probabilities = _pick_probabilities(outputs, label)
    if probabilities is None:
        return OnnxModel(session, inputs, n_features, label, feature_names)
    zipmap = probabilities.type.startswith("seq(map(")
    classes = _class_labels(graph) or _class_indices(session, inputs, n_features, probabilities)
    return OnnxClassifier(
        session,
        inputs,
        n_features,
        label,
        probabilities.name,
        classes,
        zipmap=zipmap,
        feature_names=feature_names,
    )


def _read_inputs(
    declared: Sequence[Any], display_name: str
) -> tuple[list[_Input], int | None, list[str] | None]:
    """The inputs to feed, the feature count (None if open), and the feature names if the graph has them."""
    inputs = [
        _Input(item.name, _element_type(item, display_name), min(len(item.shape), 2)) for item in declared
    ]
    if len(declared) == 1:
        shape = declared[0].shape
        if len(shape) == 1:
            return inputs, 1, None
        if len(shape) != 2:
            raise ModelLoadError(
                f"{display_name}: its input has {len(shape)} dimensions; flaskserve serves tables, "
                "so the input must be [rows, features]"
            )
        width = shape[1]
        if isinstance(width, int) and width > MAX_FEATURES:
            raise ModelLoadError(
                f"{display_name}: its input takes {width} features; flaskserve serves models of at most "
                f"{MAX_FEATURES}"
            )
        return inputs, width if isinstance(width, int) else None, None
    for item in declared:
        if not (len(item.shape) == 1 or (len(item.shape) == 2 and item.shape[1] == 1)):
            raise ModelLoadError(
                f"{display_name}: it has {len(declared)} inputs but '{item.name}' is not one column "
                f"(shape {item.shape}); serve models with one [rows, features] input or one input per feature"
            )
    return inputs, len(declared), [item.name for item in declared]


def _element_type(item: Any, display_name: str) -> np.dtype[Any]:
    dtype = _ELEMENT_TYPES.get(item.type)
    if dtype is None:
        raise ModelLoadError(
            f"{display_name}: input '{item.name}' is of type {item.type}; flaskserve feeds numbers only"
        )
    return dtype


def _pick_label(outputs: Sequence[Any]) -> str:
    for wanted in _LABEL_NAMES:
        for item in outputs:
            if item.name == wanted:
                return str(item.name)
    return str(outputs[0].name)


def _pick_probabilities(outputs: Sequence[Any], label: str) -> Any | None:
    for item in outputs:
        if item.name != label and (item.name in _PROBABILITY_NAMES or item.type.startswith("seq(map(")):
            return item
    return None


def _class_labels(graph: Any) -> list[Any] | None:
    """Class labels as a classifier node of the graph lists them, or None if no node does."""
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.name not in _CLASS_LABEL_ATTRIBUTES:
                continue
            if attribute.strings:
                return [value.decode("utf-8") for value in attribute.strings]
            if attribute.ints:
                return [int(value) for value in attribute.ints]
    return None


def _feed(inputs: Sequence[_Input], matrix: npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
    if len(inputs) == 1:
        return {inputs[0].name: inputs[0].take(matrix)}
    return {item.name: item.take(matrix[:, column : column + 1]) for column, item in enumerate(inputs)}


def _class_indices(session: Any, inputs: Sequence[_Input], n_features: int | None, output: Any) -> list[Any]:
    """0..k-1 when the graph does not name its classes; k from the output's shape, or from one probe row."""
    shape = getattr(output, "shape", None) or []
    if len(shape) == 2 and isinstance(shape[1], int):
        return list(range(shape[1]))
    if n_features is None:
        raise ModelLoadError(
            "the ONNX classifier names neither its classes nor its input width; "
            "flaskserve cannot tell how many classes it has"
        )
    [answer] = session.run([output.name], _feed(inputs, np.zeros((1, n_features))))
    if output.type.startswith("seq(map("):
        return list(answer[0])
    return list(range(np.asarray(answer).shape[-1]))
