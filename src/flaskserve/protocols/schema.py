"""Validating parsed JSON against the pydantic models that also document the API.

Every protocol declares its request bodies as pydantic models; the handlers
validate with them and ``/openapi.json`` is generated from them, so the
document cannot drift from what the server accepts. Validation errors become a
400 that names the first few bad fields.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from flaskserve.errors import MalformedRequest, clip

Model = TypeVar("Model", bound=BaseModel)

#: A protocol parameter value: the spec allows strings, numbers and booleans.
ParameterValue = Annotated[
    StrictBool | StrictInt | StrictFloat | StrictStr, Field(union_mode="left_to_right")
]
Parameters = dict[str, ParameterValue]

_SHOWN_ERRORS = 3


class ErrorBody(BaseModel):
    """Every error answer, whatever the protocol: a message for people and a code for programs."""

    model_config = ConfigDict(extra="allow")

    error: str
    code: str | None = None


def parse(model: type[Model], payload: Any, *, what: str) -> Model:
    """``payload`` as ``model``, or a 400 that says which fields are wrong and why."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise MalformedRequest(f"{what} is not valid: {explain(exc)}") from None


def explain(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False)[:_SHOWN_ERRORS]:
        where = ".".join(str(part) for part in error["loc"]) or "body"
        problems.append(f"{clip(where, 60)}: {error['msg']}")
    more = exc.error_count() - _SHOWN_ERRORS
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")
