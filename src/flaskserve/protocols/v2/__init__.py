"""The Open Inference Protocol (KServe V2), REST: metadata, inference requests and responses.

How a served model looks through this protocol:

- **Inputs.** By default one tensor named ``input`` of shape ``[-1, n_features]``
  and the model's dtype (content type ``np``). A request whose
  ``parameters.content_type`` is ``pd`` — or whose inputs are named after the
  model's features — sends one 1-D tensor per feature instead (a DataFrame's
  columns). Either way the tensors become the same validated matrix through
  :class:`~flaskserve.models.signature.Signature`, so answers equal ``/predict``.
- **Outputs** are named after the model's methods (``predict``,
  ``predict_proba``…). A request picks them with ``outputs``; without it, every
  method answers. ``"classification": k`` on an output returns the top-k classes
  as ``"score:index:label"`` strings (the classification extension).
- **Binary data** (the binary tensor data extension) is handled by
  :mod:`flaskserve.protocols.binary`; this package only decides which tensors are
  binary.

Every count and size a client declares is checked against the request limits
before anything is allocated. Pure functions: bytes and dicts in, arrays and
dicts out; no Flask.

The package keeps the import path ``flaskserve.protocols.v2``: ``schema`` holds
the wire models (also published in ``/openapi.json``), ``metadata`` the model
and server descriptions, ``request`` the decoding and ``response`` the encoding.
"""

from __future__ import annotations

from flaskserve.protocols.v2.metadata import (
    EXTENSIONS,
    class_datatype,
    model_metadata,
    output_metadata,
    server_metadata,
)
from flaskserve.protocols.v2.request import (
    CONTENT_TYPE,
    INPUT_NAME,
    InferRequest,
    OutputSpec,
    decode_infer_request,
    decode_json_tensor,
)
from flaskserve.protocols.v2.response import EncodedResponse, classify, encode_infer_response
from flaskserve.protocols.v2.schema import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    Readiness,
    RequestInput,
    RequestOutput,
    ResponseOutput,
    ServerMetadata,
    TensorMetadata,
)

__all__ = [
    "CONTENT_TYPE",
    "EXTENSIONS",
    "INPUT_NAME",
    "EncodedResponse",
    "InferRequest",
    "InferenceRequest",
    "InferenceResponse",
    "ModelMetadata",
    "OutputSpec",
    "Readiness",
    "RequestInput",
    "RequestOutput",
    "ResponseOutput",
    "ServerMetadata",
    "TensorMetadata",
    "class_datatype",
    "classify",
    "decode_infer_request",
    "decode_json_tensor",
    "encode_infer_response",
    "model_metadata",
    "output_metadata",
    "server_metadata",
]
