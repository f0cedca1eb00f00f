"""KServe V1 / TensorFlow Serving REST: ``{"instances": ...}`` and ``{"inputs": ...}`` bodies.

Row format::

    {"instances": [[5.1, 3.5, 1.4, 0.2], ...]}                    rows by position
    {"instances": [{"sepal_length": 5.1, ...}, ...]}              rows by feature name
    → {"predictions": [...]}

Columnar format::

    {"inputs": {"sepal_length": [5.1, ...], ...}}                 columns by feature name
    {"inputs": [[5.1, 3.5, 1.4, 0.2], ...]}                       a row-major tensor
    → {"outputs": [...]}

``{"b64": "..."}`` stands for a bytes value, as in TensorFlow Serving; it is
decoded here and then judged by the signature like any other value. For a model
whose settings declare an image input, rows that are each one base64 image —
``{"b64": "..."}``, or an object holding one, as TensorFlow Serving's named
inputs do (``{"image_bytes": {"b64": "..."}}``) — are PNG or JPEG images, one
per row, read by :mod:`flaskserve.protocols.image`. An optional
``signature_name`` picks the model method (``serving_default`` is the model's
default). The MLflow protocol reuses the row and column readers, since its
``instances`` and ``inputs`` keys follow this format.

Pure: bytes in, matrix out, and back; no Flask. :data:`PROTOCOL` is what the
app's protocol table holds.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from flaskserve.access import PREDICT_FROM_PATH
from flaskserve.errors import BadRequest, InvalidValue, MalformedRequest, ShapeMismatch, clip
from flaskserve.models.served import ServedModel
from flaskserve.models.signature import Signature
from flaskserve.protocols import explanation, image
from flaskserve.protocols.openapi import Operation
from flaskserve.protocols.payload import decode_json_body, encode_json, json_values
from flaskserve.protocols.schema import parse
from flaskserve.protocols.wire import Decoded, PredictRoute, WireRequest, WireResponse
from flaskserve.settings import RequestLimits

#: TensorFlow Serving's name for "the default signature".
DEFAULT_SIGNATURE = "serving_default"
#: The feature set whose records cannot be told from ``{"b64": ...}`` wrappers.
_B64_FEATURES = frozenset({"b64"})


class PredictRequest(BaseModel):
    """``POST /v1/models/{name}[/versions/{version}]:predict``: exactly one of ``instances`` or ``inputs``."""

    model_config = ConfigDict(extra="forbid")

    instances: Any = Field(
        default=None,
        description=(
            "Rows: lists in feature order, or objects keyed by feature name; for an image model, "
            '{"b64": ...} PNG or JPEG images.'
        ),
        json_schema_extra={"type": "array"},
    )
    inputs: Any = Field(
        default=None,
        description="Columns keyed by feature name, or a row-major list of rows.",
        json_schema_extra={"type": ["object", "array"]},
    )
    signature_name: StrictStr | None = Field(
        default=None, description="A model method such as predict_proba; serving_default is the default."
    )


class RowAnswer(BaseModel):
    predictions: list[Any]


class ColumnAnswer(BaseModel):
    outputs: list[Any]


class ExplainAnswer(BaseModel):
    predictions: list[Any] = Field(description="Each row's explained output: its class, or its value.")
    explanations: list[explanation.ExplanationEntry]
    explainer: str
    scale: str


class ModelList(BaseModel):
    models: list[str]


class ModelStatus(BaseModel):
    name: str
    ready: bool


@dataclass(frozen=True)
class V1Request:
    matrix: npt.NDArray[Any]
    method: str
    #: Columnar request: answer with ``outputs`` rather than ``predictions``.
    columnar: bool


def decode_request(
    payload: Any, signature: Signature, *, default_method: str, images: image.ImageReader | None = None
) -> V1Request:
    request = parse(PredictRequest, payload, what="the predict request")
    if (request.instances is None) == (request.inputs is None):
        raise MalformedRequest("send exactly one of 'instances' (rows) or 'inputs' (columns)")
    method = request.signature_name
    if method is None or method == DEFAULT_SIGNATURE:
        method = default_method
    key, columnar = ("instances", False) if request.instances is not None else ("inputs", True)
    values = request.instances if request.instances is not None else request.inputs
    found = image.b64_rows(values, key=key) if images is not None else None
    if images is not None and found is not None:
        return V1Request(images(found), method, columnar=columnar)
    if not columnar:
        return V1Request(rows_matrix(values, signature, key=key), method, columnar=False)
    return V1Request(columns_matrix(values, signature, key=key), method, columnar=True)


def encode_response(values: npt.NDArray[Any], request: V1Request) -> dict[str, Any]:
    key = "outputs" if request.columnar else "predictions"
    return {key: json_values(values)}


def explain_response(values: npt.NDArray[Any], model: ServedModel) -> dict[str, Any]:
    """``:explain``: each row's explained output as its prediction, and its explanation."""
    explainer = model.explainer()
    found = explanation.entries(values, model)
    predictions = [entry["value"] if model.signature.classes is None else entry["output"] for entry in found]
    return {
        "predictions": predictions,
        "explanations": found,
        "explainer": explainer.kind,
        "scale": explainer.scale,
    }


def rows_matrix(rows: Any, signature: Signature, *, key: str) -> npt.NDArray[Any]:
    """Rows given by position or by feature name, all one way; scalars for a one-feature model.

    ``{"b64": ...}`` values are unwrapped only when the rows as sent are refused
    (see :func:`_b64_unwrapped_if_refused`).
    """
    if not isinstance(rows, list):
        raise ShapeMismatch(f"'{key}' must be a list of rows")
    return _b64_unwrapped_if_refused(
        lambda found: _rows_matrix(found, signature, key=key), rows, unwrap_b64, signature
    )


def _rows_matrix(rows: list[Any], signature: Signature, *, key: str) -> npt.NDArray[Any]:
    # The row types as a set, built in C: a thousand rows cost one pass, not a generator loop each.
    kinds = set(map(type, rows))
    if rows and all(issubclass(kind, dict) for kind in kinds):
        return signature.matrix_from_records(rows)
    if any(issubclass(kind, dict) for kind in kinds):
        raise ShapeMismatch(
            f"the rows of '{key}' must all be objects keyed by feature name, or all lists; not a mix"
        )
    if signature.n_features == 1 and rows and not any(issubclass(kind, list) for kind in kinds):
        rows = [[value] for value in rows]
    return signature.matrix_from_rows(rows)


def columns_matrix(columns: Any, signature: Signature, *, key: str) -> npt.NDArray[Any]:
    """Columns keyed by feature name, or a list of rows."""
    if isinstance(columns, list):
        return rows_matrix(columns, signature, key=key)
    if not isinstance(columns, dict):
        raise ShapeMismatch(f"'{key}' must be an object of columns keyed by feature name, or a list of rows")
    return _b64_unwrapped_if_refused(signature.matrix_from_columns, columns, _unwrap_columns, signature)


def _unwrap_columns(columns: dict[str, Any]) -> dict[str, Any]:
    return {name: unwrap_b64(values) for name, values in columns.items()}


def _b64_unwrapped_if_refused(
    check: Callable[[Any], npt.NDArray[Any]],
    values: Any,
    unwrap: Callable[[Any], Any],
    signature: Signature,
) -> npt.NDArray[Any]:
    """``check(values)`` as sent; if the signature refuses them, ``check(unwrap(values))``.

    A ``{"b64": ...}`` wrapper is an object where the signature takes a number
    or a string, so values holding one are always refused as sent: values that
    pass hold none, and skip a walk over every value of a large request. Only
    refused ones are unwrapped and checked again, which raises exactly the error
    unwrapping first would have. The one exception is a model whose only feature
    is named ``b64``, whose records look like wrappers: those are unwrapped first.
    """
    if signature.feature_set == _B64_FEATURES:
        return check(unwrap(values))
    try:
        return check(values)
    except BadRequest:
        return check(unwrap(values))


def unwrap_b64(value: Any) -> Any:
    """Replace every ``{"b64": "..."}`` inside ``value`` with the bytes it encodes."""
    if isinstance(value, list):
        if any(isinstance(item, (list, dict)) for item in value):
            return [unwrap_b64(item) for item in value]
        return value
    if isinstance(value, Mapping):
        if value.keys() == {"b64"}:
            encoded = value["b64"]
            if not isinstance(encoded, str):
                raise InvalidValue('a {"b64": ...} value must hold a base64 string')
            try:
                return base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidValue(f"{clip(encoded)!r} is not valid base64") from None
        return {name: unwrap_b64(item) for name, item in value.items()}
    return value


_PREDICT = Operation(
    "Predict: rows (instances) answer predictions, columns (inputs) answer outputs",
    "v1",
    request={"application/json": PredictRequest},
    response={"application/json": (RowAnswer, ColumnAnswer)},
    errors=(404, 413, 415, 500, 503),
)
_EXPLAIN = explanation.operation(
    "Explain: each feature's contribution to each row's output, beside the predictions",
    "v1",
    {"application/json": PredictRequest},
    ExplainAnswer,
)


class V1Protocol:
    """``POST /v1/models/{name}[/versions/{version}]:predict`` and ``POST /v1/models/{name}:explain``."""

    name = "v1"
    answer_headers: tuple[str, ...] = ()
    routes = (
        PredictRoute("predict", "/v1/models/<name>:predict", PREDICT_FROM_PATH, _PREDICT),
        PredictRoute("predict", "/v1/models/<name>/versions/<version>:predict", PREDICT_FROM_PATH, _PREDICT),
        PredictRoute("explain", "/v1/models/<name>:explain", PREDICT_FROM_PATH, _EXPLAIN, explains=True),
    )

    def decode(self, request: WireRequest, model: ServedModel, limits: RequestLimits) -> Decoded[V1Request]:
        payload = decode_json_body(request.body, request.mimetype, max_depth=limits.max_json_depth)
        decoded = decode_request(
            payload, model.signature, default_method=model.default_method, images=image.reader(model)
        )
        return Decoded((decoded.method,), decoded.matrix, decoded)

    def encode(
        self, decoded: Decoded[V1Request], results: Mapping[str, npt.NDArray[Any]], model: ServedModel
    ) -> WireResponse:
        explained = results.get(explanation.EXPLAIN)
        if explained is not None:
            return WireResponse(encode_json(explain_response(explained, model)))
        request = decoded.state
        return WireResponse(encode_json(encode_response(results[request.method], request)))


PROTOCOL = V1Protocol()
