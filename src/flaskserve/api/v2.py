"""Routes of the Open Inference Protocol (KServe V2) over REST.

Health routes live in :mod:`flaskserve.api.health`. Inference reads the raw
body once, splits it at ``Inference-Header-Content-Length`` and leaves the rest
to :mod:`flaskserve.protocols.v2`; each requested method is one call of the
inference service, exactly as ``/predict`` makes it.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from flaskserve.api.requests import json_response
from flaskserve.errors import ModelNotReady, UnsupportedMediaType
from flaskserve.models.registry import ModelState
from flaskserve.observability.context import note
from flaskserve.protocols import binary, v2
from flaskserve.protocols.openapi import BodySchema, Operation, Parameter
from flaskserve.protocols.payload import encode_json
from flaskserve.runtime import get_runtime

blueprint = Blueprint("v2", __name__)

#: Media types an inference body may be declared as (or none, as Triton's own client sends).
_BODY_TYPES = frozenset({"application/json", "application/octet-stream"})


@blueprint.get("/v2")
def server_metadata() -> Response:
    return json_response(v2.server_metadata())


@blueprint.get("/v2/models/<name>")
@blueprint.get("/v2/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None) -> Response:
    """Metadata of a model version; ``?content_type=pd`` lists one input per feature."""
    registry = get_runtime(current_app).registry
    model = registry.resolve(name, version)
    versions = [entry.version for entry in registry.entries(name)] if version is None else None
    content_type = "pd" if request.args.get("content_type") == "pd" else "np"
    return json_response(v2.model_metadata(model, versions=versions, content_type=content_type), model=model)


@blueprint.get("/v2/models/<name>/ready")
@blueprint.get("/v2/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None) -> Response:
    entry = get_runtime(current_app).registry.entry(name, version)
    ready = entry.state is ModelState.READY and entry.model is not None
    body = {"name": name, "version": entry.version, "ready": ready}
    return json_response(body, status=200 if ready else ModelNotReady.status)


@blueprint.post("/v2/models/<name>/infer")
@blueprint.post("/v2/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None) -> Response:
    runtime = get_runtime(current_app)
    model = runtime.registry.resolve(name, version)
    note(model=model.name, version=model.version, protocol="v2")
    if request.mimetype and request.mimetype not in _BODY_TYPES and not request.mimetype.endswith("+json"):
        raise UnsupportedMediaType(
            f"send the inference request as application/json (or application/octet-stream with "
            f"{binary.HEADER_LENGTH}); got '{request.mimetype[:60]}'"
        )
    if request.headers.get("Content-Encoding", "identity").lower() != "identity":
        raise UnsupportedMediaType("compressed request bodies are not accepted; send the body uncompressed")
    header, rest = binary.split_body(request.get_data(cache=False), request.headers.get(binary.HEADER_LENGTH))
    decoded = v2.decode_infer_request(header, rest, model.signature, runtime.settings.limits)
    note(method=",".join(sorted(decoded.methods)), rows=int(decoded.matrix.shape[0]))
    results = {}
    for method in decoded.methods:
        prediction = runtime.service.predict(model, method, decoded.matrix)
        note(cache_hit=prediction.cache_hit, batch_rows=prediction.batch_rows)
        results[method] = prediction.values
    encoded = v2.encode_infer_response(model, decoded, results)
    if not encoded.tensors:
        return json_response(encoded.header, model=model)
    head = encode_json(encoded.header)
    response = Response(b"".join((head, *encoded.tensors)), mimetype="application/octet-stream")
    response.headers[binary.HEADER_LENGTH] = str(len(head))
    response.headers["X-Model-Name"] = model.name
    response.headers["X-Model-Version"] = model.version
    return response


_NOT_READY = (404, 503)
_JSON_OR_BINARY: dict[str, BodySchema] = {
    "application/json": v2.InferenceRequest,
    "application/octet-stream": {
        "type": "string",
        "format": "binary",
        "description": f"The JSON request followed by raw tensors; its length is in {binary.HEADER_LENGTH}.",
    },
}

OPERATIONS: dict[str, Operation] = {
    "v2.server_metadata": Operation(
        "Server metadata and the protocol extensions it implements",
        "v2",
        response={"application/json": v2.ServerMetadata},
    ),
    "v2.model_metadata": Operation(
        "Model metadata: input and output tensors",
        "v2",
        response={"application/json": v2.ModelMetadata},
        errors=_NOT_READY,
        parameters=(
            Parameter(
                "content_type",
                "np (default): one [-1, n_features] input; pd: one input per feature.",
                {"type": "string", "enum": ["np", "pd"]},
            ),
        ),
    ),
    "v2.model_ready": Operation(
        "Model readiness (200 ready, 503 not ready)",
        "v2",
        response={"application/json": v2.Readiness},
        success_statuses=(200, 503),
        errors=(404,),
    ),
    "v2.infer": Operation(
        "Inference: tensors in, one output per model method out",
        "v2",
        request=_JSON_OR_BINARY,
        response={
            "application/json": v2.InferenceResponse,
            "application/octet-stream": {"type": "string", "format": "binary"},
        },
        errors=(404, 413, 415, 500, 503),
        description=(
            "Supports the binary tensor data and classification extensions. Outputs are named "
            "after the model's methods (predict, predict_proba, ...)."
        ),
    ),
}
