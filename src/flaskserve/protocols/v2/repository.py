"""The model repository extension's wire format: index and load requests, the index answer.

Validated on the way in and published in ``/openapi.json``, like the other V2
models. Pure: no Flask, no files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictBool

from flaskserve.errors import MalformedRequest, clip
from flaskserve.protocols.schema import Parameters, parse

__all__ = [
    "EXTENSION",
    "LOAD_PARAMETERS",
    "LoadRequest",
    "RepositoryIndex",
    "RepositoryIndexRequest",
    "RepositoryModel",
    "decode_index_request",
    "decode_load_request",
]

#: The name ``GET /v2`` advertises this extension by.
EXTENSION = "model_repository"

#: Load parameters this server understands. None yet: a client that sends one expects it to
#: change the load (Triton's ``config`` overrides a model's configuration), and ignoring it
#: would load something other than what was asked for.
LOAD_PARAMETERS: frozenset[str] = frozenset()


class RepositoryIndexRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ready: StrictBool = Field(default=False, description="List only the model versions that are ready.")


class RepositoryModel(BaseModel):
    """One model version in the repository, served or not."""

    name: str
    version: str | None = Field(default=None, description="Absent when the folder's versions cannot be read.")
    state: Literal["READY", "LOADING", "UNLOADING", "UNAVAILABLE"]
    reason: str


class RepositoryIndex(RootModel[list[RepositoryModel]]):
    """Every model version the server serves, and those in its repository that it does not."""


class LoadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parameters: Parameters | None = Field(
        default=None,
        description="Load parameters; this server accepts none, and refuses any it does not know.",
    )


def decode_index_request(payload: Any) -> RepositoryIndexRequest:
    """An index request from parsed JSON, an object; ``{}`` (an empty body) asks for everything."""
    return parse(RepositoryIndexRequest, payload, what="the index request")


def decode_load_request(payload: Any) -> LoadRequest:
    """A load request from parsed JSON, an object; ``{}`` (an empty body) has no parameters."""
    request = parse(LoadRequest, payload, what="the load request")
    unknown = sorted(set(request.parameters or {}) - LOAD_PARAMETERS)
    if unknown:
        accepted = ", ".join(sorted(LOAD_PARAMETERS)) or "none"
        raise MalformedRequest(
            f"unknown load parameter '{clip(unknown[0])}'"
            + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
            + f"; accepted parameters: {accepted}"
        )
    return request


def index_document(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The index answer: rows as dicts, without ``version`` where it is unknown."""
    return [{key: value for key, value in row.items() if value is not None} for row in rows]
