"""The V2 wire models: validated on the way in, and published in ``/openapi.json``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from flaskserve.protocols.schema import Parameters

#: Name of the single tensor input in the default (``np``) layout.
INPUT_NAME = "input"
#: The parameter that says how tensors map to the model's table (``np``, ``pd``, ``str``).
CONTENT_TYPE = "content_type"
_MAX_DIMS = 32

Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BF16", "BYTES",
]  # fmt: skip


class RequestInput(BaseModel):
    """One input tensor of an inference request."""

    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(min_length=1, max_length=256)
    shape: list[StrictInt] = Field(max_length=_MAX_DIMS)
    datatype: Datatype
    parameters: Parameters | None = None
    data: Any = Field(
        default=None,
        description="Row-major tensor elements, flat or nested; absent when binary_data_size is set.",
        json_schema_extra={"type": "array"},
    )


class RequestOutput(BaseModel):
    """An output the client wants, by method name, with per-output options."""

    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(min_length=1, max_length=256)
    parameters: Parameters | None = None


class InferenceRequest(BaseModel):
    """``POST /v2/models/{name}[/versions/{version}]/infer``."""

    model_config = ConfigDict(extra="forbid")

    id: StrictStr | None = None
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: Parameters | None = None


class ModelMetadata(BaseModel):
    name: str
    versions: list[str] | None = None
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: Parameters | None = None


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Readiness(BaseModel):
    name: str
    version: str | None = None
    ready: bool
