"""Decoding an inference request into the validated matrix and the outputs to answer with.

Every count and size a client declares is checked against the request limits
before anything is allocated.

For a model whose settings declare an image input, a single ``BYTES`` input of
shape ``[n]`` or ``[n, 1]`` holds ``n`` PNG or JPEG images, one row each: raw
bytes through the binary tensor data extension (as tritonclient sends them), or
base64 strings in JSON ``data`` (JSON strings cannot hold raw bytes). Each is
already within ``max_string_bytes`` (like every ``BYTES`` element) when
:mod:`flaskserve.protocols.image` reads it.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from flaskserve.errors import (
    InvalidValue,
    LimitExceeded,
    MalformedRequest,
    MissingFeature,
    ShapeMismatch,
    UnsupportedMethod,
    clip,
)
from flaskserve.models.signature import Signature
from flaskserve.protocols import binary, datatypes
from flaskserve.protocols.image import ImageReader
from flaskserve.protocols.payload import decode_json
from flaskserve.protocols.schema import parse
from flaskserve.protocols.v2.schema import CONTENT_TYPE, INPUT_NAME, InferenceRequest, RequestInput
from flaskserve.settings import RequestLimits

__all__ = [
    "CONTENT_TYPE",
    "INPUT_NAME",
    "InferRequest",
    "OutputSpec",
    "decode_infer_payload",
    "decode_infer_request",
    "decode_json_tensor",
]

#: Methods whose values are class scores, in the order a classified ``predict`` looks for one.
SCORE_METHODS = ("predict_proba", "decision_function", "predict_log_proba")
_ALLOWED_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "BOOL": (bool,),
    "BYTES": (str,),
    **{name: (int,) for name in ("UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64")},
    **{name: (int, float) for name in ("FP16", "FP32", "FP64", "BF16")},
}


@dataclass(frozen=True)
class OutputSpec:
    """One output of the answer: the method it reports, how, and which method computes it."""

    name: str
    #: The method whose values this output shows (``predict_proba`` for a classified ``predict``).
    source: str
    binary: bool
    classification: int | None = None


@dataclass(frozen=True)
class InferRequest:
    """A decoded inference request: the validated matrix and what to answer with."""

    id: str | None
    matrix: npt.NDArray[Any]
    outputs: tuple[OutputSpec, ...]

    @property
    def methods(self) -> list[str]:
        """The model methods to call, each once, in output order."""
        return list(dict.fromkeys(output.source for output in self.outputs))


def decode_infer_request(
    header: bytes,
    rest: memoryview | bytes,
    signature: Signature,
    limits: RequestLimits,
    images: ImageReader | None = None,
) -> InferRequest:
    """A request body (already split at ``Inference-Header-Content-Length``) as a matrix and outputs.

    An empty header with a binary rest is the extension's raw form: the body is
    the single input's bytes for one row.
    """
    if not header and len(rest):
        payload: Any = {
            "inputs": [
                {
                    "name": INPUT_NAME,
                    "shape": [1, signature.n_features],
                    "datatype": datatypes.datatype_of(signature.dtype),
                    "parameters": {"binary_data_size": len(rest)},
                }
            ]
        }
    else:
        payload = decode_json(header, max_depth=limits.max_json_depth)
    return decode_infer_payload(payload, rest, signature, limits, images)


def decode_infer_payload(
    payload: Any,
    rest: memoryview | bytes,
    signature: Signature,
    limits: RequestLimits,
    images: ImageReader | None = None,
) -> InferRequest:
    """A parsed request (the JSON document's values) and its raw tensors as a matrix and outputs.

    The one validation of an inference request, whatever carried it: the REST
    binding parses JSON into ``payload``, the gRPC binding turns its message into
    the same values, with raw tensors as ``binary_data_size`` parameters.
    """
    _check_counts(payload, limits)
    request = parse(InferenceRequest, payload, what="the inference request")
    arrays = _decode_inputs(request, memoryview(rest), limits)
    if images is not None and len(arrays) == 1 and request.inputs[0].datatype == datatypes.BYTES:
        matrix = images(_image_elements(arrays[0], request.inputs[0].name))
    else:
        matrix = _to_matrix(request, arrays, signature)
    outputs = _decode_outputs(request, signature, limits)
    return InferRequest(id=request.id, matrix=matrix, outputs=outputs)


def _check_counts(payload: Any, limits: RequestLimits) -> None:
    """Refuse too many inputs or outputs before validating (and so walking) each of them."""
    if not isinstance(payload, dict):
        raise MalformedRequest('the inference request must be a JSON object with an "inputs" array')
    for key in ("inputs", "outputs"):
        items = payload.get(key)
        if isinstance(items, list) and len(items) > limits.max_inputs:
            raise LimitExceeded(
                f"the request names {len(items)} {key}; at most {limits.max_inputs} are accepted"
            )


def _decode_inputs(
    request: InferenceRequest, rest: memoryview, limits: RequestLimits
) -> list[npt.NDArray[Any]]:
    seen: set[str] = set()
    binary_sizes: list[int] = []
    for tensor in request.inputs:
        if tensor.name in seen:
            raise MalformedRequest(f"input '{clip(tensor.name)}' is given twice; name each input once")
        seen.add(tensor.name)
        _check_shape(tensor, limits)
        size = _binary_size(tensor)
        if size is not None:
            binary_sizes.append(size)
        elif tensor.data is None:
            raise MalformedRequest(
                f"input '{clip(tensor.name)}' has no 'data' and no 'binary_data_size' parameter"
            )
    chunks = iter(binary.slice_tensors(rest, binary_sizes))
    string_params = _str_content(request.parameters)
    arrays = []
    for tensor in request.inputs:
        if _binary_size(tensor) is not None:
            array = binary.decode_tensor(
                next(chunks),
                tensor.datatype,
                tensor.shape,
                name=tensor.name,
                max_string_bytes=limits.max_string_bytes,
            )
            if tensor.datatype == datatypes.BYTES and (string_params or _str_content(tensor.parameters)):
                array = _utf8(array, tensor.name)
        else:
            array = decode_json_tensor(
                tensor.data, tensor.datatype, tensor.shape, name=tensor.name, limits=limits
            )
        arrays.append(array)
    return arrays


def _check_shape(tensor: RequestInput, limits: RequestLimits) -> None:
    if any(dim < 0 for dim in tensor.shape):
        raise ShapeMismatch(
            f"input '{clip(tensor.name)}' has shape {tensor.shape}; dimensions must be non-negative "
            "(-1 is for metadata only)"
        )
    count = math.prod(tensor.shape)
    if count > limits.max_tensor_elements:
        raise LimitExceeded(
            f"input '{clip(tensor.name)}' declares {count} elements; at most "
            f"{limits.max_tensor_elements} are accepted per input"
        )
    # An empty tensor may still name huge dimensions, and numpy refuses to shape even an
    # empty array whose other dimensions multiply past its size limit.
    if math.prod(max(dim, 1) for dim in tensor.shape) > limits.max_tensor_elements:
        raise LimitExceeded(
            f"input '{clip(tensor.name)}' has shape {clip(str(tensor.shape))}; its dimensions "
            f"may multiply to at most {limits.max_tensor_elements}"
        )


def _binary_size(tensor: RequestInput) -> int | None:
    size = (tensor.parameters or {}).get("binary_data_size")
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise MalformedRequest(
            f"input '{clip(tensor.name)}': binary_data_size must be a non-negative integer; got {size!r}"
        )
    if tensor.data is not None:
        raise MalformedRequest(
            f"input '{clip(tensor.name)}' has both 'data' and binary_data_size; send one or the other"
        )
    return size


def decode_json_tensor(
    data: Any, datatype: str, shape: Sequence[int], *, name: str, limits: RequestLimits
) -> npt.NDArray[Any]:
    """JSON ``data`` (flat or nested, row-major) as an array of ``shape`` and ``datatype``.

    The element count is compared with the shape before the array is built, and
    element types are checked first: numpy would otherwise turn ``"1"`` into 1.0.
    FP16 and BF16 arrive as JSON numbers (the spec's rule for every non-BYTES
    type) and are narrowed here; BF16 is kept as float32.
    """
    if not isinstance(data, list):
        raise ShapeMismatch(f"input '{clip(name)}': 'data' must be an array; got {type(data).__name__}")
    flat = data
    while flat and type(flat[0]) is list:
        if set(map(type, flat)) != {list}:
            raise ShapeMismatch(f"input '{clip(name)}': nested 'data' mixes arrays and values at one level")
        flat = list(itertools.chain.from_iterable(flat))
    expected = math.prod(shape)
    if len(flat) != expected:
        raise ShapeMismatch(
            f"input '{clip(name)}' has shape {list(shape)}, which holds {expected} elements; "
            f"'data' has {len(flat)}"
        )
    allowed = _ALLOWED_JSON_TYPES[datatype]
    kinds = set(map(type, flat))
    if not kinds.issubset(allowed):
        position, value = next((i, v) for i, v in enumerate(flat) if type(v) not in allowed)
        raise InvalidValue(
            f"input '{clip(name)}' is {datatype}; element {position} is {_json_kind(value)} "
            f"{clip(repr(value))}, which {datatype} cannot hold"
        )
    if datatype == datatypes.BYTES:
        # Characters bound bytes from below; encode only when a string might be over the limit.
        longest = max((len(s) for s in flat), default=0)
        if longest * 4 > limits.max_string_bytes:
            longest = max(len(s.encode("utf-8")) for s in flat)
        if longest > limits.max_string_bytes:
            raise LimitExceeded(
                f"an element of input '{clip(name)}' has {longest} bytes of UTF-8; at most "
                f"{limits.max_string_bytes} are accepted"
            )
        strings = np.empty(len(flat), dtype=object)
        strings[:] = flat
        return strings.reshape(shape)
    try:
        with np.errstate(all="ignore"):
            array = np.array(flat, dtype=datatypes.value_dtype(datatype))
    except OverflowError:
        raise InvalidValue(f"input '{clip(name)}' has a value out of range for {datatype}") from None
    return array.reshape(shape)


def _image_elements(array: npt.NDArray[Any], name: str) -> list[bytes]:
    """The images of a ``BYTES`` input: raw (binary data) or base64 strings (JSON data), one per row."""
    if array.ndim not in (1, 2) or (array.ndim == 2 and array.shape[1] != 1):
        raise ShapeMismatch(
            f"input '{clip(name)}' holds images, one per row, so its shape must be [rows] or [rows, 1]; "
            f"got {list(array.shape)}"
        )
    found = []
    for position, element in enumerate(array.reshape(-1).tolist()):
        if isinstance(element, bytes):
            found.append(element)
            continue
        try:
            found.append(base64.b64decode(element, validate=True))
        except (binascii.Error, ValueError):
            raise InvalidValue(
                f"element {position} of input '{clip(name)}' is not base64: in JSON 'data' an image "
                "is its file's bytes in base64 (or send it raw with binary_data_size)"
            ) from None
    return found


def _to_matrix(
    request: InferenceRequest, arrays: list[npt.NDArray[Any]], signature: Signature
) -> npt.NDArray[Any]:
    """The tensors as one matrix: a single ``input`` tensor, or one column per feature."""
    names = [tensor.name for tensor in request.inputs]
    content_type = (request.parameters or {}).get(CONTENT_TYPE)
    columns = content_type == "pd" or (
        names != [INPUT_NAME] and any(name in signature.feature_names for name in names)
    )
    if not columns:
        if names != [INPUT_NAME]:
            raise MissingFeature(
                f"missing input '{INPUT_NAME}': the model takes one input '{INPUT_NAME}' of shape "
                f"[-1, {signature.n_features}], or one input per feature "
                f"({', '.join(signature.feature_names[:8])}) with parameters.content_type 'pd'; "
                f"got {', '.join(repr(clip(n)) for n in names[:8])}"
            )
        return signature.matrix_from_rows(arrays[0])
    by_name: dict[str, npt.NDArray[Any]] = {}
    for name, array in zip(names, arrays, strict=True):
        if array.ndim == 2 and array.shape[1] == 1:
            array = array.reshape(-1)
        if array.ndim != 1:
            raise ShapeMismatch(
                f"input '{clip(name)}' is one column of the table, so its shape must be [rows] or "
                f"[rows, 1]; got {list(array.shape)}"
            )
        by_name[name] = array
    return signature.matrix_from_columns(by_name)


def _decode_outputs(
    request: InferenceRequest, signature: Signature, limits: RequestLimits
) -> tuple[OutputSpec, ...]:
    binary_default = _flag((request.parameters or {}).get("binary_data_output"), "binary_data_output")
    if request.outputs is None:
        return tuple(_spec(method, binary_default, None, signature) for method in signature.methods)
    specs = []
    seen: set[str] = set()
    for output in request.outputs:
        if output.name in seen:
            raise MalformedRequest(f"output '{clip(output.name)}' is requested twice; name each output once")
        seen.add(output.name)
        if output.name not in signature.methods:
            raise UnsupportedMethod(
                f"unknown output '{clip(output.name)}'; the model's outputs are "
                f"{', '.join(signature.methods)}"
            )
        parameters = output.parameters or {}
        binary_flag = parameters.get("binary_data")
        is_binary = binary_default if binary_flag is None else _flag(binary_flag, "binary_data")
        specs.append(_spec(output.name, is_binary, parameters.get("classification"), signature))
    return tuple(specs)


def _spec(name: str, is_binary: bool, classification: Any, signature: Signature) -> OutputSpec:
    if classification is None:
        return OutputSpec(name=name, source=name, binary=is_binary)
    if isinstance(classification, bool) or not isinstance(classification, int) or classification < 1:
        raise MalformedRequest(
            f"output '{clip(name)}': classification must be a positive integer (the number of classes); "
            f"got {classification!r}"
        )
    if signature.classes is None:
        raise UnsupportedMethod(f"output '{clip(name)}' cannot be classified: the model is not a classifier")
    n_classes = len(signature.classes)
    if classification > n_classes:
        raise InvalidValue(
            f"output '{clip(name)}': classification asks for the top {classification} classes; "
            f"the model has {n_classes}"
        )
    source = (
        name if name in SCORE_METHODS else next((m for m in SCORE_METHODS if m in signature.methods), None)
    )
    if source is None:
        raise UnsupportedMethod(
            f"output '{clip(name)}' cannot be classified: the model offers no class scores "
            f"({', '.join(SCORE_METHODS)})"
        )
    return OutputSpec(name=name, source=source, binary=is_binary, classification=classification)


def _flag(value: Any, what: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise MalformedRequest(f"{what} must be true or false; got {clip(repr(value))}")
    return value


def _str_content(parameters: Mapping[str, Any] | None) -> bool:
    return (parameters or {}).get(CONTENT_TYPE) == "str"


def _utf8(array: npt.NDArray[Any], name: str) -> npt.NDArray[Any]:
    try:
        decoded = [element.decode("utf-8") for element in array.reshape(-1).tolist()]
    except UnicodeDecodeError:
        raise InvalidValue(f"input '{clip(name)}' has content_type 'str' but is not valid UTF-8") from None
    strings = np.empty(len(decoded), dtype=object)
    strings[:] = decoded
    return strings.reshape(array.shape)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        str: "string",
        int: "number",
        float: "number",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)
