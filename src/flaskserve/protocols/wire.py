"""What a wire protocol is: a body in, the methods and matrix to run; results in, a body out.

Each protocol (simple JSON, Open Inference V2, KServe V1, MLflow, and any added
later) implements :class:`InferenceProtocol` in its own module and is entered in
the app's protocol table once (:mod:`flaskserve.protocols.table`). The web edge
(:mod:`flaskserve.api.predict`) does everything around it the same way for all
of them: it resolves the model the route names, reads the body through the one
reader that enforces every limit, notes the request for logs and metrics, calls
the inference service for each method and sets the model headers. A protocol therefore cannot skip a guard,
and adding one touches no other protocol.

Pure: no Flask. A request is plain values (:class:`WireRequest`), an answer is
bytes, a media type and headers (:class:`WireResponse`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy.typing as npt

from flaskserve.access import Access, HeaderLookup
from flaskserve.models.served import ServedModel
from flaskserve.protocols.openapi import Operation
from flaskserve.settings import RequestLimits

__all__ = [
    "Decoded",
    "InferenceProtocol",
    "PredictRoute",
    "WireRequest",
    "WireResponse",
]

State = TypeVar("State")

_NO_HEADERS: dict[str, str] = {}


@dataclass(frozen=True)
class WireRequest:
    """One prediction request as the protocol sees it, whatever carried it."""

    body: bytes
    #: The declared media type without parameters, lower case; empty when none was declared.
    mimetype: str = ""
    #: Parameters of the media type (``charset``).
    mimetype_params: Mapping[str, str] = field(default_factory=dict)
    headers: HeaderLookup = field(default_factory=lambda: _NO_HEADERS)
    #: Query-string parameters (their first values).
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decoded(Generic[State]):
    """What to run: the methods, in the order they are asked for, on one validated matrix.

    ``state`` is whatever the protocol needs again to encode the answer (its
    parsed request); the edge only carries it from :meth:`InferenceProtocol.decode`
    to :meth:`InferenceProtocol.encode`.
    """

    methods: tuple[str, ...]
    matrix: npt.NDArray[Any]
    state: State


@dataclass(frozen=True)
class WireResponse:
    body: bytes
    mimetype: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PredictRoute:
    """An HTTP route that predicts with a protocol; ``endpoint`` is unique within the protocol."""

    endpoint: str
    rule: str
    access: Access
    operation: Operation
    #: The route explains the model's answers (the ``explain`` method) rather than predicting.
    explains: bool = False


class InferenceProtocol(Protocol[State]):
    """A wire format for predictions; see the module docstring for what the edge does around it."""

    #: The protocol's name, as the ``protocol`` label of metrics and access lines show it.
    @property
    def name(self) -> str: ...

    #: The HTTP routes that predict with this protocol (none for protocols carried otherwise).
    @property
    def routes(self) -> tuple[PredictRoute, ...]: ...

    #: The request headers :meth:`decode` reads (through ``WireRequest.headers``): with the body and
    #: its media type, all an answer may depend on, so a cached reply is sent again only to a
    #: request that agrees on them (:mod:`flaskserve.inference.replay`).
    @property
    def answer_headers(self) -> tuple[str, ...]: ...

    def decode(self, request: WireRequest, model: ServedModel, limits: RequestLimits) -> Decoded[State]:
        """Validate the request against the model's signature; raise from the error tree if it doesn't fit."""
        ...

    def encode(
        self, decoded: Decoded[State], results: Mapping[str, npt.NDArray[Any]], model: ServedModel
    ) -> WireResponse:
        """The answer to ``decoded``, given each method's output by method name."""
        ...
