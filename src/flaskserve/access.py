"""Who may call a route, and which model a prediction route acts on.

Every route declares an :class:`Access` beside its path (see
:mod:`flaskserve.web.routing`): the scope a key needs, and for prediction routes
where the model's name comes from. Authentication, rate limiting, the security
headers and the prediction edge all read that one declaration, so a route's
permission and the model it predicts with cannot disagree.

A route that declares nothing (``access`` is ``None``) needs ``admin``, even for
a CORS preflight: a forgotten declaration locks a route down instead of opening
it up.

Pure: no Flask. The functions take the URL variables and a header lookup as
plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple, Protocol

__all__ = [
    "ADMIN",
    "METRICS",
    "MODEL_NAME_HEADER",
    "MODEL_VERSION_HEADER",
    "OPEN",
    "PREDICT_DEFAULT",
    "PREDICT_FROM_HEADER",
    "PREDICT_FROM_PATH",
    "READ",
    "Access",
    "HeaderLookup",
    "ModelFrom",
    "Scope",
    "model_requested",
    "required_scope",
]

#: The header that names a model where the URL does not (``/invocations``), and names it in every answer.
MODEL_NAME_HEADER = "X-Model-Name"
#: The header that names a model version, beside :data:`MODEL_NAME_HEADER`.
MODEL_VERSION_HEADER = "X-Model-Version"

# CORS preflight requests carry no credentials, and Flask answers them itself with
# nothing but the Allow header, so they must not be turned away for lack of a key.
_PREFLIGHT = "OPTIONS"


class HeaderLookup(Protocol):
    """What is read of a request's headers: Werkzeug's headers and a plain dict both fit."""

    def get(self, key: str, /) -> str | None: ...


class ModelFrom(Enum):
    """Where a prediction route finds the name of the model it acts on."""

    #: The server's default model (``/predict``).
    DEFAULT = "default"
    #: The ``name`` and ``version`` URL variables (``/models/<name>/predict``).
    PATH = "path"
    #: The :data:`MODEL_NAME_HEADER` and :data:`MODEL_VERSION_HEADER` headers, else the default model.
    HEADER = "header"


@dataclass(frozen=True)
class Access:
    """What a route declares about who may call it.

    ``scope`` is one of ``open`` (no key at all), ``read``, ``metrics``, ``admin``
    or ``predict``; a ``predict`` route also says where its model comes from, so
    that a key scoped to one model (``predict:iris``) is checked against it.
    """

    scope: str
    model_from: ModelFrom | None = None

    def __post_init__(self) -> None:
        if (self.scope == "predict") != (self.model_from is not None):
            raise ValueError("a predict route says where its model comes from; no other route does")


OPEN = Access("open")
READ = Access("read")
METRICS = Access("metrics")
ADMIN = Access("admin")
PREDICT_DEFAULT = Access("predict", ModelFrom.DEFAULT)
PREDICT_FROM_PATH = Access("predict", ModelFrom.PATH)
PREDICT_FROM_HEADER = Access("predict", ModelFrom.HEADER)


class Scope(NamedTuple):
    """The permission one request needs: a scope name and, for ``predict``, the model.

    ``model`` is ``None`` for every scope but ``predict``; for ``predict`` it is ``None``
    when the request goes to the default model. The name ``open`` needs no key at all.
    """

    name: str
    model: str | None = None


def model_requested(
    access: Access, view_args: Mapping[str, Any], headers: HeaderLookup
) -> tuple[str | None, str | None]:
    """The (name, version) a prediction request asks for; ``None`` means the default.

    The one reading of :class:`ModelFrom`: the prediction edge resolves the model
    with it, and authentication checks a key against the same name.
    """
    if access.model_from is ModelFrom.PATH:
        name, version = view_args.get("name"), view_args.get("version")
        return (str(name) if name is not None else None, str(version) if version is not None else None)
    if access.model_from is ModelFrom.HEADER:
        return headers.get(MODEL_NAME_HEADER) or None, headers.get(MODEL_VERSION_HEADER) or None
    return None, None


def required_scope(
    access: Access | None, method: str, view_args: Mapping[str, Any], headers: HeaderLookup
) -> Scope:
    """The scope a request with ``method`` to a route declared with ``access`` needs."""
    if access is None:
        return Scope(ADMIN.scope)
    if method.upper() == _PREFLIGHT:
        return Scope("open")
    if access.model_from is None:
        return Scope(access.scope)
    name, _ = model_requested(access, view_args, headers)
    return Scope("predict", name)
