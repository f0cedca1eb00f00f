"""Encoding model answers as a V2 inference response, JSON or binary, and classifying scores."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from flaskserve.models.served import ServedModel
from flaskserve.models.signature import Signature
from flaskserve.protocols import binary, datatypes
from flaskserve.protocols.payload import json_values
from flaskserve.protocols.v2.request import InferRequest


@dataclass(frozen=True)
class EncodedResponse:
    """The JSON header of an answer and the raw tensors that follow it (none for a JSON-only answer).

    An output's ``data`` may be a flat numpy array, which :func:`~flaskserve.protocols.payload.encode_json`
    writes as the list it holds.
    """

    header: dict[str, Any]
    tensors: tuple[bytes, ...]


def encode_infer_response(
    model: ServedModel, request: InferRequest, results: Mapping[str, npt.NDArray[Any]]
) -> EncodedResponse:
    """The answer to ``request`` given each method's values, binary where the request asked."""
    outputs = []
    tensors = []
    for spec in request.outputs:
        values = results[spec.source]
        if spec.classification is not None:
            values = classify(values, spec.classification, model.signature)
        values, datatype = _wire_values(values)
        output: dict[str, Any] = {"name": spec.name, "shape": list(values.shape), "datatype": datatype}
        if spec.binary:
            raw = binary.encode_tensor(values, datatype)
            output["parameters"] = {"binary_data_size": len(raw)}
            tensors.append(raw)
        else:
            output["data"] = _json_data(values, datatype)
        outputs.append(output)
    header: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
    if request.id is not None:
        header["id"] = request.id
    header["outputs"] = outputs
    return EncodedResponse(header=header, tensors=tuple(tensors))


def classify(values: npt.NDArray[Any], count: int, signature: Signature) -> npt.NDArray[Any]:
    """Top-``count`` classes per row as ``"score:index:label"`` strings, highest score first."""
    scores = np.asarray(values, dtype=np.float64)
    if scores.ndim == 1:
        # A binary classifier's decision_function: one margin, positive for classes[1].
        scores = np.column_stack([-scores, scores])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :count]
    labels = signature.class_labels
    result = np.empty(order.shape, dtype=object)
    for row, indices in enumerate(order.tolist()):
        for column, index in enumerate(indices):
            result[row, column] = f"{scores[row, index]:g}:{index}:{labels[index]}"
    return result


def _wire_values(values: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], str]:
    datatype = datatypes.datatype_of(values.dtype)
    if datatype == "FP64" and values.dtype != np.float64:
        values = values.astype(np.float64)
    return values, datatype


def _json_data(values: npt.NDArray[Any], datatype: str) -> Any:
    flat = values.reshape(-1)
    if datatype == datatypes.BYTES:
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat.tolist()]
    return json_values(flat)
