"""Routes declared once: the path, who may call it and what it does, in one place.

An app built by :func:`flaskserve.app.create_app` makes every URL rule a
:class:`DeclaredRule`, so a view states its access and its OpenAPI operation
where it states its path::

    @blueprint.get("/v2/models/<name>", access=READ, operation=Operation(...))
    def model_metadata(name: str) -> Response: ...

Authentication and rate limits read :attr:`DeclaredRule.access` of the matched
rule; ``/openapi.json`` reads :attr:`DeclaredRule.operation` of every rule. There
is no second table to keep in step: a route exists, is guarded and is documented
by the same declaration.

The app's URL map (:class:`DeclaredMap`) adds one converter: ``<model:name>`` is
one path segment without ``:``, for rules where a verb follows the name in the
same segment (``/v1/models/iris:predict``). Model names never contain ``:``.
"""

from __future__ import annotations

from typing import Any

from werkzeug.datastructures import ImmutableDict
from werkzeug.routing import BaseConverter, Map, Rule

from flaskserve.access import Access
from flaskserve.protocols.openapi import Operation

__all__ = ["DeclaredMap", "DeclaredRule", "ModelNameConverter", "declared_access", "declared_operation"]


class DeclaredRule(Rule):
    """A Werkzeug rule that carries its :class:`~flaskserve.access.Access` and its operation.

    Either may be left out: a rule with no access needs ``admin`` (fail closed),
    a rule with no operation is documented with a generic answer.
    """

    def __init__(
        self, string: str, *, access: Access | None = None, operation: Operation | None = None, **options: Any
    ) -> None:
        super().__init__(string, **options)
        self.access = access
        self.operation = operation

    def get_empty_kwargs(self) -> dict[str, Any]:
        # Werkzeug copies rules (``Rule.empty``) through these keyword arguments.
        return {**super().get_empty_kwargs(), "access": self.access, "operation": self.operation}


class ModelNameConverter(BaseConverter):
    """A model name in a path: one segment, without the ``:`` that introduces a verb.

    Without it, ``GET /v1/models/<name>`` would also match ``/v1/models/iris:predict``
    (as the model ``iris:predict``), and that URL would claim to answer GET.
    """

    regex = "[^/:]+"


class DeclaredMap(Map):
    """Werkzeug's URL map, with the ``model`` converter."""

    default_converters = ImmutableDict({**Map.default_converters, "model": ModelNameConverter})


def declared_access(rule: Rule | None) -> Access | None:
    """The access a matched rule declares; ``None`` (admin only) for plain rules."""
    access: Access | None = getattr(rule, "access", None)
    return access


def declared_operation(rule: Rule) -> Operation | None:
    operation: Operation | None = getattr(rule, "operation", None)
    return operation
