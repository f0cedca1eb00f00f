"""Inference over the Open Inference Protocol's REST binding, as the app's protocol table holds it.

A body is JSON, or JSON followed by raw tensors whose split point is the
``Inference-Header-Content-Length`` header (the binary tensor data extension);
an answer is binary exactly when the request asked for a binary output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy.typing as npt

from flaskserve.access import PREDICT_FROM_PATH
from flaskserve.errors import UnsupportedMediaType, clip
from flaskserve.models.served import ServedModel
from flaskserve.protocols import binary, image
from flaskserve.protocols.openapi import BodySchema, Operation
from flaskserve.protocols.payload import encode_json, is_json_mimetype
from flaskserve.protocols.v2.request import InferRequest, decode_infer_request
from flaskserve.protocols.v2.response import encode_infer_response
from flaskserve.protocols.v2.schema import InferenceRequest, InferenceResponse
from flaskserve.protocols.wire import Decoded, PredictRoute, WireRequest, WireResponse
from flaskserve.settings import RequestLimits

__all__ = ["PROTOCOL", "V2Protocol"]

_BINARY = "application/octet-stream"

_JSON_OR_BINARY: dict[str, BodySchema] = {
    "application/json": InferenceRequest,
    _BINARY: {
        "type": "string",
        "format": "binary",
        "description": f"The JSON request followed by raw tensors; its length is in {binary.HEADER_LENGTH}.",
    },
}

_INFER = Operation(
    "Inference: tensors in, one output per model method out",
    "v2",
    request=_JSON_OR_BINARY,
    response={"application/json": InferenceResponse, _BINARY: {"type": "string", "format": "binary"}},
    errors=(404, 413, 415, 500, 503),
    description=(
        "Supports the binary tensor data and classification extensions. Outputs are named "
        "after the model's methods (predict, predict_proba, ...)."
    ),
)


class V2Protocol:
    """``POST /v2/models/{name}[/versions/{version}]/infer``."""

    name = "v2"
    answer_headers = (binary.HEADER_LENGTH,)
    routes = (
        PredictRoute("infer", "/v2/models/<name>/infer", PREDICT_FROM_PATH, _INFER),
        PredictRoute("infer", "/v2/models/<name>/versions/<version>/infer", PREDICT_FROM_PATH, _INFER),
    )

    def decode(
        self, request: WireRequest, model: ServedModel, limits: RequestLimits
    ) -> Decoded[InferRequest]:
        mimetype = request.mimetype
        # No declared type is accepted too: Triton's own client sends none.
        if mimetype and mimetype != _BINARY and not is_json_mimetype(mimetype):
            raise UnsupportedMediaType(
                f"send the inference request as application/json (or {_BINARY} with "
                f"{binary.HEADER_LENGTH}); got '{clip(mimetype, 60)}'"
            )
        header, rest = binary.split_body(request.body, request.headers.get(binary.HEADER_LENGTH))
        decoded = decode_infer_request(header, rest, model.signature, limits, image.reader(model))
        return Decoded(tuple(decoded.methods), decoded.matrix, decoded)

    def encode(
        self, decoded: Decoded[InferRequest], results: Mapping[str, npt.NDArray[Any]], model: ServedModel
    ) -> WireResponse:
        encoded = encode_infer_response(model, decoded.state, results)
        head = encode_json(encoded.header)
        if not encoded.tensors:
            return WireResponse(head)
        body = b"".join((head, *encoded.tensors))
        return WireResponse(body, _BINARY, {binary.HEADER_LENGTH: str(len(head))})


PROTOCOL = V2Protocol()
