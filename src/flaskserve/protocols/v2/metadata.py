"""A served model, and the server, described as V2 tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import flaskserve
from flaskserve.models.served import ServedModel
from flaskserve.models.signature import Signature
from flaskserve.protocols import datatypes
from flaskserve.protocols.v2.schema import CONTENT_TYPE, INPUT_NAME

#: Extensions this server implements, as ``GET /v2`` advertises them.
EXTENSIONS: tuple[str, ...] = ("binary_tensor_data", "classification", "model_repository")


def server_metadata() -> dict[str, Any]:
    return {"name": "flaskserve", "version": flaskserve.__version__, "extensions": list(EXTENSIONS)}


def model_metadata(
    model: ServedModel, *, versions: Sequence[str] | None = None, content_type: str = "np"
) -> dict[str, Any]:
    """The model as V2 tensors; ``content_type="pd"`` lists one input per feature instead of one matrix."""
    signature = model.signature
    input_type = datatypes.datatype_of(signature.dtype)
    if signature.is_text:
        # One string per row: a 1-D BYTES tensor named after the text feature.
        inputs = [
            {
                "name": signature.feature_names[0],
                "datatype": datatypes.BYTES,
                "shape": [-1],
                "parameters": {CONTENT_TYPE: "str"},
            }
        ]
    elif content_type == "pd":
        inputs = [
            {"name": name, "datatype": input_type, "shape": [-1], "parameters": {CONTENT_TYPE: "pd"}}
            for name in signature.feature_names
        ]
    else:
        inputs = [
            {
                "name": INPUT_NAME,
                "datatype": input_type,
                "shape": [-1, signature.n_features],
                "parameters": {CONTENT_TYPE: "np"},
            }
        ]
    document: dict[str, Any] = {"name": model.name}
    if versions is not None:
        document["versions"] = list(versions)
    document.update(
        {
            "platform": model.platform,
            "inputs": inputs,
            "outputs": [output_metadata(method, signature) for method in signature.methods],
            "parameters": {CONTENT_TYPE: content_type},
        }
    )
    return document


def output_metadata(method: str, signature: Signature) -> dict[str, Any]:
    """What one method returns: its datatype and shape, ``-1`` where only a request can tell."""
    n_classes = len(signature.classes) if signature.classes is not None else -1
    if method == "predict":
        if signature.classes is not None:
            return {"name": method, "datatype": class_datatype(signature), "shape": [-1]}
        return {"name": method, "datatype": "FP64", "shape": [-1]}
    if method in ("predict_proba", "predict_log_proba"):
        return {"name": method, "datatype": "FP64", "shape": [-1, n_classes]}
    if method == "decision_function" and n_classes == 2:
        return {"name": method, "datatype": "FP64", "shape": [-1]}
    if method == "decision_function":
        return {"name": method, "datatype": "FP64", "shape": [-1, n_classes]}
    return {"name": method, "datatype": "FP64", "shape": [-1, -1]}


def class_datatype(signature: Signature) -> str:
    classes = signature.classes or ()
    if any(isinstance(c, str) for c in classes):
        return datatypes.BYTES
    return datatypes.datatype_of(np.asarray(classes).dtype)
