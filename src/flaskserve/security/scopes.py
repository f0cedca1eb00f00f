"""Which scope each route needs: one table, read by the auth extension on every request.

The table is keyed by the route's rule as Flask spells it (``/models/<name>/predict``),
so adding a route means adding a row here; a rule with no row needs ``admin``. Failing
closed means a forgotten row locks a new route down instead of opening it up.

Rules are compared after dropping converters, so ``/models/<string:name>`` and
``/models/<name>`` are the same row. The model a ``predict`` route acts on is read from
the ``name`` URL variable; routes that name their model elsewhere (``/invocations``
takes it from a header) get it from the caller as ``requested_model``.

Nothing here imports Flask: the function takes the rule, the method and the URL
variables as plain values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum
from typing import Any, NamedTuple

__all__ = ["ROUTE_SCOPES", "Scope", "is_known_rule", "required_scope"]


class Scope(NamedTuple):
    """The permission one request needs: a scope name and, for ``predict``, the model.

    ``model`` is ``None`` for every scope but ``predict``; for ``predict`` it is ``None``
    when the request goes to the default model. The name ``open`` needs no key at all.
    """

    name: str
    model: str | None = None


OPEN = Scope("open")
READ = Scope("read")
METRICS = Scope("metrics")
ADMIN = Scope("admin")


class _Model(Enum):
    """Where a ``predict`` route finds the name of the model it acts on."""

    DEFAULT = "default"  # the server's default model
    PATH = "path"  # the ``name`` URL variable
    REQUESTED = "requested"  # chosen by the caller (a header), else the default model


_PREDICT = "predict"

#: Rule -> the scope it needs, or, for ``predict``, where its model name comes from.
ROUTE_SCOPES: Mapping[str, Scope | _Model] = {
    # The simple protocol and the model catalogue.
    "/": READ,
    "/models": READ,
    "/models/<name>": READ,
    "/models/<name>/versions/<version>": READ,
    "/predict": _Model.DEFAULT,
    "/models/<name>/predict": _Model.PATH,
    "/models/<name>/versions/<version>/predict": _Model.PATH,
    # Liveness and readiness probes: orchestrators call them without credentials.
    "/livez": OPEN,
    "/readyz": OPEN,
    "/ping": OPEN,
    "/health": OPEN,
    "/v2/health/live": OPEN,
    "/v2/health/ready": OPEN,
    "/v2/models/<name>/ready": OPEN,
    "/v2/models/<name>/versions/<version>/ready": OPEN,
    # Open inference protocol (v2).
    "/v2": READ,
    "/v2/models/<name>": READ,
    "/v2/models/<name>/versions/<version>": READ,
    "/v2/models/<name>/infer": _Model.PATH,
    "/v2/models/<name>/versions/<version>/infer": _Model.PATH,
    "/v2/repository/index": READ,
    "/v2/repository/models/<name>/load": ADMIN,
    "/v2/repository/models/<name>/unload": ADMIN,
    # KServe v1.
    "/v1/models": READ,
    "/v1/models/<name>": READ,
    "/v1/models/<name>/versions/<version>": READ,
    "/v1/models/<name>:predict": _Model.PATH,
    "/v1/models/<name>/versions/<version>:predict": _Model.PATH,
    # SageMaker-style serving.
    "/invocations": _Model.REQUESTED,
    "/version": READ,
    "/metrics": METRICS,
    "/openapi.json": READ,
    # The docs page is an HTML shell with no data in it: open, so a browser can load it and the
    # user can type a key into it. The document it reads (/openapi.json) and every call it makes
    # still need keys.
    "/docs": OPEN,
    "/docs/static/<filename>": OPEN,
}

#: Rules under these prefixes (the prefix itself, or anything below it) need ``read``.
_READ_PREFIXES = ("/docs", "/ui", "/static")

_CONVERTER = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")
# CORS preflight requests carry no credentials, and Flask answers them itself with
# nothing but the Allow header, so they must not be turned away for lack of a key.
_PREFLIGHT = "OPTIONS"


def _canonical(rule: str) -> str:
    """Drop converters: ``/models/<string:name>`` becomes ``/models/<name>``."""
    return _CONVERTER.sub(r"<\1>", rule)


def _under_read_prefix(rule: str) -> bool:
    return any(rule == prefix or rule.startswith(prefix + "/") for prefix in _READ_PREFIXES)


def is_known_rule(rule: str) -> bool:
    """Whether ``rule`` has its own row, rather than falling back to ``admin``.

    A test can assert this for every rule of an app, so a route added without a row
    is caught before it ships locked to admins.
    """
    rule = _canonical(rule)
    return rule in ROUTE_SCOPES or _under_read_prefix(rule)


def required_scope(
    endpoint_rule: str,
    method: str,
    view_args: Mapping[str, Any] | None = None,
    *,
    requested_model: str | None = None,
) -> Scope:
    """The scope a request to ``endpoint_rule`` with ``method`` needs.

    ``view_args`` are the URL variables Flask matched; ``requested_model`` is the model
    a request named outside its URL (the ``X-Model-Name`` header of ``/invocations``).
    Unknown rules need ``admin``.
    """
    rule = _canonical(endpoint_rule)
    entry = ROUTE_SCOPES.get(rule)
    if entry is None:
        if not _under_read_prefix(rule):
            return ADMIN
        entry = READ
    if method.upper() == _PREFLIGHT:
        return OPEN
    if isinstance(entry, Scope):
        return entry
    if entry is _Model.PATH:
        name = (view_args or {}).get("name")
        # A path rule always has ``name``; if a table row were wrong, asking for the
        # every-model ``predict`` is the stricter reading of it.
        return Scope(_PREDICT, str(name) if name is not None else None)
    if entry is _Model.REQUESTED:
        return Scope(_PREDICT, requested_model or None)
    return Scope(_PREDICT, None)
