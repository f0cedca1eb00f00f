"""Inference over the Open Inference Protocol's gRPC binding, as the app's protocol table holds it.

A body is one serialized ``ModelInferRequest``; an answer is one serialized
``ModelInferResponse``. The message is turned into the values the REST binding
parses from JSON — typed ``contents`` become ``data``, each ``raw_input_contents``
buffer becomes a tensor with ``binary_data_size`` — and handed to the one V2
validation (:func:`~flaskserve.protocols.v2.request.decode_infer_payload`), so
both bindings accept and refuse exactly the same requests with the same messages.
Outputs always travel raw (``raw_output_contents``), as Triton sends them:
the client decodes them by datatype and shape, and FP16 or BF16 have no other form.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

import numpy.typing as npt
from google.protobuf.message import DecodeError

from flaskserve.errors import MalformedRequest, clip
from flaskserve.models.served import ServedModel
from flaskserve.protocols import image
from flaskserve.protocols.v2.request import InferRequest, decode_infer_payload
from flaskserve.protocols.v2.response import encode_infer_response
from flaskserve.protocols.wire import Decoded, PredictRoute, WireRequest, WireResponse
from flaskserve.rpc.proto import grpc_predict_v2_pb2 as pb
from flaskserve.settings import RequestLimits

__all__ = ["PROTOCOL", "GrpcProtocol", "parameter_values"]

#: The message type of a gRPC body, as the access log and the edge see it.
MEDIA_TYPE = "application/grpc+proto"

#: Which ``InferTensorContents`` field carries each datatype; FP16 and BF16 travel raw only.
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_RAW_ONLY = frozenset({"FP16", "BF16"})
# The parameters that say where a tensor's bytes are: set here, never taken from the client.
_PLACEMENT = frozenset({"binary_data_size", "binary_data", "binary_data_output"})
_LENGTH = struct.Struct("<I")


class GrpcProtocol:
    """``inference.GRPCInferenceService/ModelInfer``; it has no HTTP routes.

    The servicer parses each message once, for the model it names, and answers
    with :meth:`for_message`, so that :meth:`decode` reads that message instead of
    parsing the body again (the edge still reads the body, within its limit).
    """

    name = "grpc"
    routes: tuple[PredictRoute, ...] = ()
    answer_headers: tuple[str, ...] = ()

    def __init__(self, message: pb.ModelInferRequest | None = None) -> None:
        self._message = message

    def for_message(self, message: pb.ModelInferRequest) -> GrpcProtocol:
        """This protocol for one request whose body is ``message``, already parsed."""
        return GrpcProtocol(message)

    def decode(
        self, request: WireRequest, model: ServedModel, limits: RequestLimits
    ) -> Decoded[InferRequest]:
        message = self._message if self._message is not None else parse_infer_request(request.body)
        payload, rest = _payload(message)
        decoded = decode_infer_payload(payload, rest, model.signature, limits, image.reader(model))
        return Decoded(tuple(decoded.methods), decoded.matrix, decoded)

    def encode(
        self, decoded: Decoded[InferRequest], results: Mapping[str, npt.NDArray[Any]], model: ServedModel
    ) -> WireResponse:
        encoded = encode_infer_response(model, decoded.state, results)
        header = encoded.header
        response = pb.ModelInferResponse(
            model_name=header["model_name"],
            model_version=header["model_version"],
            id=header.get("id") or "",
            raw_output_contents=encoded.tensors,
        )
        for output in header["outputs"]:
            response.outputs.add(name=output["name"], datatype=output["datatype"], shape=output["shape"])
        return WireResponse(response.SerializeToString(), MEDIA_TYPE)


def parse_infer_request(body: bytes) -> pb.ModelInferRequest:
    """The request message; a body that is not one is a malformed request."""
    message = pb.ModelInferRequest()
    try:
        message.ParseFromString(body)
    except DecodeError:
        raise MalformedRequest("the body is not a serialized inference.ModelInferRequest") from None
    return message


def parameter_values(parameters: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    """A parameter map as the plain values REST carries (strings, numbers, booleans)."""
    values: dict[str, Any] = {}
    for key, parameter in parameters.items():
        which = parameter.WhichOneof("parameter_choice")
        if which is not None:
            values[key] = getattr(parameter, which)
    return values


def _payload(message: pb.ModelInferRequest) -> tuple[dict[str, Any], bytes]:
    """The request as REST's parsed JSON values, and the raw tensors that follow it."""
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise MalformedRequest(
            f"raw_input_contents has {len(raw)} buffers for {len(message.inputs)} inputs; "
            "send one buffer per input, in the order of the inputs"
        )
    inputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for position, tensor in enumerate(message.inputs):
        parameters = _own_parameters(tensor.parameters)
        entry: dict[str, Any] = {
            "name": tensor.name,
            "shape": list(tensor.shape),
            "datatype": tensor.datatype,
        }
        if raw:
            if tensor.HasField("contents"):
                raise MalformedRequest(
                    f"input '{clip(tensor.name)}' sets contents while raw_input_contents is used; "
                    "send every input raw or every input typed"
                )
            chunk = raw[position]
        else:
            chunk = _typed_chunk(tensor, entry)
        if chunk is not None:
            parameters["binary_data_size"] = len(chunk)
            chunks.append(chunk)
        if parameters:
            entry["parameters"] = parameters
        inputs.append(entry)
    request_parameters = _own_parameters(message.parameters)
    # Every output travels raw: see the module docstring.
    request_parameters["binary_data_output"] = True
    payload: dict[str, Any] = {"inputs": inputs, "parameters": request_parameters}
    if message.id:
        payload["id"] = message.id
    if message.outputs:
        payload["outputs"] = [
            {"name": output.name, "parameters": _own_parameters(output.parameters) | {"binary_data": True}}
            for output in message.outputs
        ]
    return payload, b"".join(chunks)


def _typed_chunk(tensor: pb.ModelInferRequest.InferInputTensor, entry: dict[str, Any]) -> bytes | None:
    """Put a typed tensor's values into ``entry["data"]``; BYTES become a raw chunk instead.

    Returns the raw chunk of a BYTES tensor (REST's JSON form of BYTES is text,
    the gRPC form is bytes, and the raw form holds both), else ``None``.
    """
    datatype = tensor.datatype
    if datatype in _RAW_ONLY:
        raise MalformedRequest(
            f"input '{clip(tensor.name)}' is {datatype}, which has no typed contents; "
            "send it in raw_input_contents"
        )
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        # The one validation names the accepted datatypes.
        entry["data"] = []
        return None
    contents = tensor.contents
    values = getattr(contents, field)
    if not values:
        given = [name for name in sorted(set(CONTENTS_FIELD.values())) if getattr(contents, name)]
        if given:
            raise MalformedRequest(
                f"input '{clip(tensor.name)}' is {datatype}, so its values go in contents.{field}; "
                f"got contents.{given[0]}"
            )
    if datatype == "BYTES":
        return b"".join(_LENGTH.pack(len(value)) + value for value in values)
    entry["data"] = list(values)
    return None


def _own_parameters(parameters: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    values = parameter_values(parameters)
    for key in _PLACEMENT & values.keys():
        del values[key]
    return values


PROTOCOL = GrpcProtocol()
