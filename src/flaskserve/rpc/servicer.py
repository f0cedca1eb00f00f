"""``inference.GRPCInferenceService``: each RPC answered by its twin REST route through the app.

The servicer only translates: an RPC's request message into the call to its
REST twin (:mod:`flaskserve.rpc.edge`), and the answer back into the RPC's
response message or its status. Every rule — keys and scopes, rate limits,
validation, limits, errors — is the HTTP edge's own.

A refusal leaves as the gRPC code of its HTTP status with the REST error's
message as details, and trailing metadata that says the rest: ``x-request-id``
always, ``x-error-code`` (the error tree's code), ``x-error-id`` (a 500's id,
which the server logged with its traceback), and for a rate limit
``retry-after`` in seconds and a ``google.rpc.RetryInfo`` in the standard
``grpc-status-details-bin``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote

import grpc
import orjson
from flask import Flask, Response, request
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from flaskserve.access import PREDICT_FROM_PATH
from flaskserve.api.predict import predict
from flaskserve.errors import MalformedRequest
from flaskserve.observability.context import REQUEST_ID_HEADER
from flaskserve.rpc.codec import MEDIA_TYPE, PROTOCOL, parse_infer_request
from flaskserve.rpc.edge import Call, dispatch, grpc_status
from flaskserve.rpc.proto import grpc_predict_v2_pb2 as pb
from flaskserve.web.errors import ERROR_ID_HEADER

__all__ = ["SERVICE_NAME", "InferenceServicer", "method_handlers"]

SERVICE_NAME = "inference.GRPCInferenceService"

Message = TypeVar("Message")
_STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class _Status(grpc.Status):  # type: ignore[misc]
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


class InferenceServicer:
    """The RPCs of the service, answered by ``app``."""

    def __init__(self, app: Flask) -> None:
        self._app = app

    def server_live(self, _: pb.ServerLiveRequest, context: grpc.ServicerContext) -> pb.ServerLiveResponse:
        self._json(context, Call("GET", "/v2/health/live"))
        return pb.ServerLiveResponse(live=True)

    def server_ready(self, _: pb.ServerReadyRequest, context: grpc.ServicerContext) -> pb.ServerReadyResponse:
        document = self._json(context, Call("GET", "/v2/health/ready"), answers=(200, 503))
        return pb.ServerReadyResponse(ready=bool(document.get("ready")))

    def model_ready(
        self, message: pb.ModelReadyRequest, context: grpc.ServicerContext
    ) -> pb.ModelReadyResponse:
        path = _model_path(context, message.name, message.version) + "/ready"
        document = self._json(context, Call("GET", path), answers=(200, 503))
        return pb.ModelReadyResponse(ready=bool(document.get("ready")))

    def server_metadata(
        self, _: pb.ServerMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ServerMetadataResponse:
        document = self._json(context, Call("GET", "/v2"))
        return pb.ServerMetadataResponse(
            name=document["name"], version=document["version"], extensions=document["extensions"]
        )

    def model_metadata(
        self, message: pb.ModelMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ModelMetadataResponse:
        document = self._json(context, Call("GET", _model_path(context, message.name, message.version)))
        return pb.ModelMetadataResponse(
            name=document["name"],
            versions=document.get("versions", []),
            platform=document["platform"],
            inputs=[_tensor(tensor) for tensor in document["inputs"]],
            outputs=[_tensor(tensor) for tensor in document["outputs"]],
        )

    def model_infer(self, body: bytes, context: grpc.ServicerContext) -> bytes:
        """Parsed once, here: the prediction edge reads the body within its limit and decodes this message."""
        try:
            message = parse_infer_request(body)
        except MalformedRequest as error:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, error.message)
        path = _model_path(context, message.model_name, message.model_version) + "/infer"
        protocol = PROTOCOL.for_message(message)

        def view() -> Response:
            return predict(protocol, PREDICT_FROM_PATH, request.view_args or {})

        response = self._answer(context, Call("POST", path, body, MEDIA_TYPE), view)
        return response.get_data()

    def repository_index(
        self, message: pb.RepositoryIndexRequest, context: grpc.ServicerContext
    ) -> pb.RepositoryIndexResponse:
        body = orjson.dumps({"ready": message.ready})
        rows = self._json(context, Call("POST", "/v2/repository/index", body))
        return pb.RepositoryIndexResponse(
            models=[
                pb.RepositoryIndexResponse.ModelIndex(
                    name=row["name"], version=row.get("version", ""), state=row["state"], reason=row["reason"]
                )
                for row in rows
            ]
        )

    def repository_model_load(
        self, message: pb.RepositoryModelLoadRequest, context: grpc.ServicerContext
    ) -> pb.RepositoryModelLoadResponse:
        self._repository(context, message, "load")
        return pb.RepositoryModelLoadResponse()

    def repository_model_unload(
        self, message: pb.RepositoryModelUnloadRequest, context: grpc.ServicerContext
    ) -> pb.RepositoryModelUnloadResponse:
        self._repository(context, message, "unload")
        return pb.RepositoryModelUnloadResponse()

    def _repository(
        self,
        context: grpc.ServicerContext,
        message: pb.RepositoryModelLoadRequest | pb.RepositoryModelUnloadRequest,
        action: str,
    ) -> None:
        if not message.model_name:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "model_name is required")
        parameters = {
            key: getattr(value, which)
            for key, value in message.parameters.items()
            if (which := value.WhichOneof("parameter_choice")) is not None and which != "bytes_param"
        }
        body = orjson.dumps({"parameters": parameters} if parameters else {})
        path = f"/v2/repository/models/{quote(message.model_name, safe='')}/{action}"
        self._json(context, Call("POST", path, body))

    def _json(self, context: grpc.ServicerContext, call: Call, answers: tuple[int, ...] = (200,)) -> Any:
        response = self._answer(context, call, None, answers)
        return orjson.loads(response.get_data())

    def _answer(
        self,
        context: grpc.ServicerContext,
        call: Call,
        view: Callable[[], Response] | None,
        answers: tuple[int, ...] = (200,),
    ) -> Response:
        response = dispatch(self._app, call, context.invocation_metadata() or (), context.peer(), view)
        trailing = _trailing_metadata(response)
        if response.status_code in answers:
            context.set_trailing_metadata(trailing)
            return response
        _refuse(context, response, trailing)


def _refuse(
    context: grpc.ServicerContext, response: Response, trailing: list[tuple[str, str | bytes]]
) -> NoReturn:
    """End the call with the status of a refused request; the REST error's message is the details."""
    code = grpc_status(response.status_code)
    try:
        document = orjson.loads(response.get_data())
        message = str(document.get("error", "")) if isinstance(document, dict) else ""
    except orjson.JSONDecodeError:
        message = ""
    message = message or response.status
    retry_after = response.headers.get("Retry-After")
    if retry_after is not None and retry_after.isdigit():
        trailing.append(("retry-after", retry_after))
        detail = status_pb2.Status(code=code.value[0], message=message)
        retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=int(retry_after)))
        detail.details.add().Pack(retry)
        trailing.append((_STATUS_DETAILS_KEY, detail.SerializeToString()))
    context.abort_with_status(_Status(code, message, tuple(trailing)))
    raise AssertionError("abort_with_status returns only by raising")  # pragma: no cover


def _trailing_metadata(response: Response) -> list[tuple[str, str | bytes]]:
    trailing: list[tuple[str, str | bytes]] = []
    request_id = response.headers.get(REQUEST_ID_HEADER)
    if request_id is not None:
        trailing.append((REQUEST_ID_HEADER.lower(), request_id))
    if response.status_code >= 400:
        try:
            document = orjson.loads(response.get_data())
        except orjson.JSONDecodeError:
            document = None
        if isinstance(document, dict) and isinstance(document.get("code"), str):
            trailing.append(("x-error-code", document["code"]))
    error_id = response.headers.get(ERROR_ID_HEADER)
    if error_id is not None:
        trailing.append((ERROR_ID_HEADER.lower(), error_id))
    return trailing


def _model_path(context: grpc.ServicerContext, name: str, version: str) -> str:
    if not name:
        _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "the model name is required")
    path = f"/v2/models/{quote(name, safe='')}"
    return f"{path}/versions/{quote(version, safe='')}" if version else path


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("abort returns only by raising")  # pragma: no cover


def _tensor(document: Mapping[str, Any]) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(
        name=document["name"], datatype=document["datatype"], shape=document["shape"]
    )


def method_handlers(servicer: InferenceServicer) -> grpc.GenericRpcHandler:
    """The service's handlers; ``ModelInfer`` takes and gives bytes: the edge reads them as the body."""

    def unary(
        behaviour: Callable[[Message, grpc.ServicerContext], Any], request_type: Any
    ) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=request_type.FromString,
            response_serializer=lambda message: message.SerializeToString(),
        )

    handlers = {
        "ServerLive": unary(servicer.server_live, pb.ServerLiveRequest),
        "ServerReady": unary(servicer.server_ready, pb.ServerReadyRequest),
        "ModelReady": unary(servicer.model_ready, pb.ModelReadyRequest),
        "ServerMetadata": unary(servicer.server_metadata, pb.ServerMetadataRequest),
        "ModelMetadata": unary(servicer.model_metadata, pb.ModelMetadataRequest),
        "ModelInfer": grpc.unary_unary_rpc_method_handler(servicer.model_infer),
        "RepositoryIndex": unary(servicer.repository_index, pb.RepositoryIndexRequest),
        "RepositoryModelLoad": unary(servicer.repository_model_load, pb.RepositoryModelLoadRequest),
        "RepositoryModelUnload": unary(servicer.repository_model_unload, pb.RepositoryModelUnloadRequest),
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)
