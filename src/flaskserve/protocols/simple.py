"""The simple JSON protocol: the tutorial's ``POST /predict``, made complete.

Requests::

    {"x": 1, "y": 2}                                 one row by feature name
    {"instances": [{"x": 1, "y": 2}, ...]}           rows by name
    {"instances": [[1, 2], ...]}                     rows by position
    [{"x": 1, "y": 2}, ...]                          a bare list of rows

A text model (see :mod:`flaskserve.models.signature`) takes the same shapes with
its one text feature: ``{"text": "where is my parcel"}``, ``{"instances":
[{"text": "hi"}, ...]}``, or bare strings as rows, ``{"instances": ["hi", "bye"]}``.

An image model (settings ``image``) also takes one PNG or JPEG image as the body
(``image/png``, ``image/jpeg``, or a multipart upload's ``file`` field), and
base64 images in JSON, as KServe V1 sends them: ``{"b64": "..."}`` for one,
``{"instances": [{"b64": "..."}, ...]}`` for several; all read by
:mod:`flaskserve.protocols.image`, one row per image.

A ``"method"`` key (or the ``method`` query parameter) picks the model method.
One row by name answers ``{"prediction": ...}``; every other form answers
``{"predictions": [...]}``. Classifier probabilities come back as
``{label: probability}`` maps keyed by the model's classes.

Pure: bytes in, matrix out, and back; no Flask. :data:`PROTOCOL` is what the
app's protocol table holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy.typing as npt

from flaskserve.access import PREDICT_DEFAULT, PREDICT_FROM_PATH
from flaskserve.errors import MalformedRequest, ShapeMismatch, clip
from flaskserve.models.served import ServedModel
from flaskserve.models.signature import Signature
from flaskserve.protocols import explanation, image
from flaskserve.protocols.openapi import Operation, Parameter
from flaskserve.protocols.payload import decode_json_body, encode_json, json_values
from flaskserve.protocols.wire import Decoded, PredictRoute, WireRequest, WireResponse
from flaskserve.settings import RequestLimits

METHOD_KEY = "method"
ROWS_KEY = "instances"
_PROBABILITY_METHODS = frozenset({"predict_proba", "predict_log_proba", "decision_function"})


@dataclass(frozen=True)
class SimpleRequest:
    matrix: npt.NDArray[Any]
    method: str
    #: One row sent by name: answer with the singular ``prediction`` key.
    single: bool


def decode_request(
    payload: Any,
    signature: Signature,
    *,
    default_method: str,
    query_method: str | None = None,
    images: image.ImageReader | None = None,
) -> SimpleRequest:
    if isinstance(payload, list):
        return SimpleRequest(_rows(payload, signature), query_method or default_method, single=False)
    if not isinstance(payload, dict):
        raise MalformedRequest(
            'the body must be a JSON object such as {"feature": value, ...} or {"instances": [...]}'
        )
    method = _method(payload, signature, query_method) or default_method
    if ROWS_KEY in payload and ROWS_KEY not in signature.feature_names:
        extra = [k for k in payload if k not in (ROWS_KEY, METHOD_KEY)]
        if extra:
            raise MalformedRequest(
                f"unexpected key{'s' if len(extra) > 1 else ''} "
                f"{', '.join(repr(clip(str(k))) for k in extra[:5])} beside 'instances'; "
                "send features inside each row"
            )
        found = image.b64_rows(payload[ROWS_KEY], key=ROWS_KEY) if images is not None else None
        if images is not None and found is not None:
            return SimpleRequest(images(found), method, single=False)
        return SimpleRequest(_rows(payload[ROWS_KEY], signature), method, single=False)
    record = payload
    if METHOD_KEY in payload and METHOD_KEY not in signature.feature_names:
        record = {k: v for k, v in payload.items() if k != METHOD_KEY}
    found = image.b64_rows([record], key="the body") if images is not None else None
    if images is not None and found is not None:
        return SimpleRequest(images(found), method, single=True)
    return SimpleRequest(signature.matrix_from_records([record]), method, single=True)


def encode_response(values: npt.NDArray[Any], request: SimpleRequest, signature: Signature) -> dict[str, Any]:
    answers = render_values(values, request.method, signature)
    if request.single:
        return {"prediction": answers[0]}
    return {"predictions": answers}


def render_values(values: npt.NDArray[Any], method: str, signature: Signature) -> Any:
    """Model output as JSON-ready rows: probability maps for classifiers, plain values otherwise.

    Plain values stay an array where orjson writes it as it is (see
    :func:`~flaskserve.protocols.payload.json_values`); one row of it is then a
    numpy scalar or row, which orjson writes the same way.
    """
    labels = signature.class_labels
    if method in _PROBABILITY_METHODS and labels and values.ndim == 2 and values.shape[1] == len(labels):
        # map() builds the thousand small dicts of a large answer without a Python loop.
        return list(map(dict, map(zip, repeat(labels), values.tolist())))
    return json_values(values)


def _rows(rows: Any, signature: Signature) -> npt.NDArray[Any]:
    if not isinstance(rows, list):
        raise ShapeMismatch("'instances' must be a list of rows")
    # The row types as a set, built in C: a thousand rows cost one pass, not two generator loops.
    kinds = set(map(type, rows))
    if rows and all(issubclass(kind, dict) for kind in kinds):
        return signature.matrix_from_records(rows)
    if any(issubclass(kind, dict) for kind in kinds):
        raise ShapeMismatch("rows must all be objects keyed by feature name, or all be lists; not a mix")
    return signature.matrix_from_rows(rows)


def _method(payload: dict[str, Any], signature: Signature, query_method: str | None) -> str | None:
    if METHOD_KEY not in payload or METHOD_KEY in signature.feature_names:
        return query_method
    method = payload[METHOD_KEY]
    if not isinstance(method, str):
        raise MalformedRequest('\'method\' must be a string such as "predict" or "predict_proba"')
    if query_method is not None and query_method != method:
        raise MalformedRequest(
            f"the body asks for method '{clip(method)}' but the query string for '{clip(query_method)}'"
        )
    return method


_ROWS = {
    "oneOf": [{"type": "object"}, {"type": "array"}],
    "description": 'One row by name {"x": 1, "y": 2}, or {"instances": [...]}, or a list of rows.',
}
_IMAGE = {
    "type": "string",
    "format": "binary",
    "description": "One image, for models that declare an image input.",
}
_UPLOAD = {
    "type": "object",
    "properties": {"file": _IMAGE},
    "required": ["file"],
}
_BODIES: dict[str, Any] = {
    "application/json": _ROWS,
    "image/png": _IMAGE,
    "image/jpeg": _IMAGE,
    "multipart/form-data": _UPLOAD,
}
_PREDICT = Operation(
    "Predict with the simple JSON protocol",
    "simple",
    request=_BODIES,
    response={"application/json": {"type": "object"}},
    errors=(404, 413, 415, 500, 503),
    parameters=(Parameter(METHOD_KEY, "The model method, e.g. predict_proba."),),
)
_EXPLAIN = explanation.operation(
    "Explain predictions: each feature's contribution to each row's output", "simple", _BODIES
)


class SimpleProtocol:
    """``POST /predict``, ``POST /models/{name}[/versions/{version}]/predict`` and ``.../explain``."""

    name = "simple"
    answer_headers: tuple[str, ...] = ()
    routes = (
        PredictRoute("predict_default", "/predict", PREDICT_DEFAULT, _PREDICT),
        PredictRoute("predict_latest", "/models/<name>/predict", PREDICT_FROM_PATH, _PREDICT),
        PredictRoute(
            "predict_version", "/models/<name>/versions/<version>/predict", PREDICT_FROM_PATH, _PREDICT
        ),
        PredictRoute("explain_latest", "/models/<name>/explain", PREDICT_FROM_PATH, _EXPLAIN, explains=True),
        PredictRoute(
            "explain_version",
            "/models/<name>/versions/<version>/explain",
            PREDICT_FROM_PATH,
            _EXPLAIN,
            explains=True,
        ),
    )

    def decode(
        self, request: WireRequest, model: ServedModel, limits: RequestLimits
    ) -> Decoded[SimpleRequest]:
        if image.is_image(request.mimetype):
            method = request.query.get(METHOD_KEY) or model.default_method
            matrix = image.image_matrix(request.body, request.mimetype, model)
            return Decoded((method,), matrix, SimpleRequest(matrix, method, single=True))
        payload = decode_json_body(request.body, request.mimetype, max_depth=limits.max_json_depth)
        decoded = decode_request(
            payload,
            model.signature,
            default_method=model.default_method,
            query_method=request.query.get(METHOD_KEY),
            images=image.reader(model),
        )
        return Decoded((decoded.method,), decoded.matrix, decoded)

    def encode(
        self, decoded: Decoded[SimpleRequest], results: Mapping[str, npt.NDArray[Any]], model: ServedModel
    ) -> WireResponse:
        if explanation.EXPLAIN in results:
            return WireResponse(
                encode_json(explanation.explanation_answer(results[explanation.EXPLAIN], model))
            )
        request = decoded.state
        return WireResponse(encode_json(encode_response(results[request.method], request, model.signature)))


PROTOCOL = SimpleProtocol()
