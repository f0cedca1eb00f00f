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
    "PinRequest",
    "RepositoryIndex",
    "RepositoryIndexRequest",
    "RepositoryModel",
    "decode_index_request",
    "decode_load_request",
    "decode_pin_request",
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
    policy: str | None = Field(
        default=None,
        description="The model's version policy in force: 'all', 'latest N', 'specific A, B' or 'pinned N'.",
    )
    policy_source: Literal["default", "settings", "api"] | None = Field(
        default=None,
        description="Where that policy comes from: none set, the model's settings, or a pin through the API.",
    )


class RepositoryIndex(RootModel[list[RepositoryModel]]):
    """Every model version the server serves, and those in its repository that it does not."""


class LoadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parameters: Parameters | None = Field(
        default=None,
        description="Load parameters; this server accepts none, and refuses any it does not know.",
    )


class PinRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,9}$",
        description=(
            'The version to serve alone, as its folder is named, e.g. "3"; without it, the version '
            "that answers unversioned requests now (the newest served)."
        ),
    )


def decode_pin_request(payload: Any) -> PinRequest:
    """A pin request from parsed JSON, an object that may name the version; ``{}`` names none."""
    return parse(PinRequest, payload, what="the pin request")


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
