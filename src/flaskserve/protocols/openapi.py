"""The OpenAPI 3.1 document, built from the routes an app serves and the protocols' own schemas.

The web edge hands over every route it serves (path, method, and the
:class:`Operation` that describes it, if any); request and response bodies are
the pydantic models the handlers validate with, so the document cannot say
something the server does not do. A route nobody described still appears, with
a generic answer, so the document never omits what the server serves.

Path parameters named ``name`` and ``version`` list the served models and
versions as enums, so that clients generated from the document — and fuzzers —
reach real models. An operation's :class:`Link` entries become OpenAPI links on
its success answers (loading a model leads to predicting with it), which
stateful clients and fuzzers follow; a link to a route the app does not serve is
left out. Pure: no Flask.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from flaskserve.protocols.schema import ErrorBody

OPENAPI_VERSION = "3.1.0"
_REF = "#/components/schemas/{model}"
_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}

#: A body schema: a pydantic model, one of several models, or a raw JSON Schema for bodies
#: no model describes (CSV text, raw bytes…).
BodySchema = type[BaseModel] | tuple[type[BaseModel], ...] | Mapping[str, Any]


@dataclass(frozen=True)
class Parameter:
    name: str
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    location: str = "query"
    #: The value names a served model: list them as the schema's enum.
    lists_models: bool = False


@dataclass(frozen=True)
class Link:
    """A call that may follow a successful answer, and where its parameters come from.

    ``rule`` is the followed route as declared (``/v2/models/<name>/infer``) or in
    OpenAPI syntax; ``parameters`` maps its parameters to runtime expressions such as
    ``$request.path.name`` (the same model the answered request named).
    """

    name: str
    method: str
    rule: str
    parameters: Mapping[str, str]
    description: str = ""


@dataclass(frozen=True)
class Operation:
    """What one route does, for the document: summary, bodies and the error statuses it can answer."""

    summary: str
    tag: str
    #: Request bodies by media type.
    request: Mapping[str, BodySchema] = field(default_factory=dict)
    #: Whether a request must carry a body; routes whose body is optional say False.
    request_required: bool = True
    #: The success body by media type (status ``success``).
    response: Mapping[str, BodySchema] = field(default_factory=dict)
    #: Statuses answered with the success body (readiness routes answer 503 with it too).
    success_statuses: tuple[int, ...] = (200,)
    #: Statuses answered with the error body, beyond the 4XX every route may give.
    errors: tuple[int, ...] = ()
    parameters: tuple[Parameter, ...] = ()
    description: str = ""
    #: Calls that may follow a success answer (OpenAPI links).
    links: tuple[Link, ...] = ()


@dataclass(frozen=True)
class Route:
    """One (path, method) an app serves; ``path`` uses OpenAPI's ``{param}`` syntax."""

    path: str
    method: str
    endpoint: str
    operation: Operation | None = None
    #: Used as the summary when no operation describes the route.
    doc: str = ""


def openapi_path(rule: str) -> tuple[str, list[str]]:
    """A Werkzeug rule (``/v2/models/<name>``, ``<path:filename>``) as an OpenAPI path and its parameters."""
    names: list[str] = []

    def replace(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return "{" + match.group(1) + "}"

    path = re.sub(r"<(?:[a-zA-Z_]+(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>", replace, rule)
    return path, names


def build_document(
    routes: Iterable[Route],
    *,
    title: str,
    version: str,
    description: str = "",
    model_names: Sequence[str] = (),
    model_versions: Sequence[str] = (),
) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    used: dict[type[BaseModel], set[str]] = {ErrorBody: {"serialization"}}
    ordered = sorted(routes, key=lambda r: (r.path, r.method))
    operation_ids = {(route.path, route.method.upper()): _operation_id(route) for route in ordered}
    for route in ordered:
        operation = route.operation
        parameter_names = re.findall(r"{([^}]+)}", route.path)
        item: dict[str, Any] = {
            "operationId": _operation_id(route),
            "summary": operation.summary if operation else (route.doc or route.endpoint),
            "tags": [operation.tag if operation else "other"],
        }
        if operation and operation.description:
            item["description"] = operation.description
        parameters = [_path_parameter(name, model_names, model_versions) for name in parameter_names]
        if operation:
            parameters += [_query_parameter(p, model_names) for p in operation.parameters]
        if parameters:
            item["parameters"] = parameters
        if operation and operation.request:
            item["requestBody"] = {
                "required": operation.request_required,
                "content": {
                    media: {"schema": _schema(body, "validation", used)}
                    for media, body in operation.request.items()
                },
            }
        item["responses"] = _responses(operation, used, operation_ids)
        paths.setdefault(route.path, {})[route.method.lower()] = item
    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    return {
        "openapi": OPENAPI_VERSION,
        "info": info,
        "paths": paths,
        "components": {"schemas": _components(used)},
    }


def _responses(
    operation: Operation | None,
    used: dict[type[BaseModel], set[str]],
    operation_ids: Mapping[tuple[str, str], str],
) -> dict[str, Any]:
    if operation is None:
        return {"default": {"description": "The route's answer."}}
    success: dict[str, Any] = {"description": "Success."}
    if operation.response:
        success["content"] = {
            media: {"schema": _schema(body, "serialization", used)}
            for media, body in operation.response.items()
        }
    links = _links(operation.links, operation_ids)
    if links:
        success["links"] = links
    responses: dict[str, Any] = {str(status): success for status in operation.success_statuses}
    error = {
        "description": "An error; see the message.",
        "content": {"application/json": {"schema": _ERROR_REF}},
    }
    for status in operation.errors:
        responses.setdefault(str(status), error)
    responses["4XX"] = error
    return responses


def _links(links: Iterable[Link], operation_ids: Mapping[tuple[str, str], str]) -> dict[str, Any]:
    """The OpenAPI links of ``links`` whose target the app serves, keyed by name."""
    found: dict[str, Any] = {}
    for link in links:
        target = operation_ids.get((openapi_path(link.rule)[0], link.method.upper()))
        if target is None:
            continue
        found[link.name] = {"operationId": target, "parameters": dict(link.parameters)}
        if link.description:
            found[link.name]["description"] = link.description
    return found


def _schema(body: BodySchema, mode: str, used: dict[type[BaseModel], set[str]]) -> dict[str, Any]:
    if isinstance(body, tuple):
        return {"oneOf": [_schema(choice, mode, used) for choice in body]}
    if isinstance(body, type) and issubclass(body, BaseModel):
        used.setdefault(body, set()).add(mode)
        return {"$ref": _REF.format(model=body.__name__)}
    return dict(body)


def _components(used: Mapping[type[BaseModel], set[str]]) -> dict[str, Any]:
    key = tuple(sorted(((model, mode) for model, modes in used.items() for mode in modes), key=_model_key))
    return _schemas_for(key)


def _model_key(pair: tuple[type[BaseModel], str]) -> tuple[str, str]:
    return pair[0].__name__, pair[1]


@functools.lru_cache(maxsize=8)
def _schemas_for(models: tuple[tuple[type[BaseModel], str], ...]) -> dict[str, Any]:
    """JSON Schemas of the models (and every model they refer to), keyed by class name."""
    # A model used both in requests and answers is documented once, in its request form:
    # its fields accept at least what it is ever answered with.
    chosen: dict[type[BaseModel], str] = {}
    for model, mode in models:
        chosen[model] = "validation" if mode == "validation" or model in chosen else mode
    _, top = models_json_schema(
        [(model, mode) for model, mode in chosen.items()],  # type: ignore[misc]
        ref_template=_REF,
    )
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    return schemas


def _path_parameter(name: str, model_names: Sequence[str], model_versions: Sequence[str]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if name == "name" and model_names:
        schema["enum"] = list(model_names)
    elif name == "version" and model_versions:
        schema["enum"] = list(model_versions)
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query_parameter(parameter: Parameter, model_names: Sequence[str]) -> dict[str, Any]:
    schema = dict(parameter.schema)
    if parameter.lists_models and model_names:
        schema["enum"] = list(model_names)
    return {
        "name": parameter.name,
        "in": parameter.location,
        "required": False,
        "description": parameter.description,
        "schema": schema,
    }


def _operation_id(route: Route) -> str:
    slug = re.sub(r"[^a-zA-Z0-9]+", "_", route.path).strip("_") or "root"
    return f"{route.method.lower()}_{slug}"
