"""API-key authentication: a Flask extension that checks every request against the route table.

Once the key store holds at least one key, every request must present a key whose
scopes allow the route, as the route declares it (:mod:`flaskserve.access`), except
the routes declared ``open`` (health and readiness probes). The check runs in a
``before_request`` hook, after routing and before the view, so a request without a
valid key is answered before its body is read.

A key is accepted from ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``, never
from the query string: URLs end up in access logs, proxy logs and browser history.

A request that matches no route still needs a valid key of any scope: strangers get
401 and learn nothing about which URLs exist, while key holders get the honest 404
or 405. A route that declares no access needs ``admin``.

The name of the key that authenticated a request is in ``flask.g.api_key_name`` for
logs; read it with ``g.get("api_key_name")``, as it is unset on open routes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g, request

from flaskserve.access import Access, HeaderLookup, Scope, required_scope
from flaskserve.errors import Forbidden, Unauthorized
from flaskserve.security.keys import ApiKey, KeyStore
from flaskserve.web.routing import declared_access

__all__ = ["API_KEY_HEADER", "EXTENSION_KEY", "ApiKeyAuth", "AuthPolicy", "auth_policy"]

log = logging.getLogger("flaskserve.security")

EXTENSION_KEY = "flaskserve.auth"
#: The header that carries a key for clients that cannot set ``Authorization``.
API_KEY_HEADER = "X-API-Key"

_CHALLENGE = 'Bearer realm="flaskserve"'
# RFC 6750, section 3.1: tell a client whose key was refused that retrying with it is pointless.
_INVALID_CHALLENGE = 'Bearer realm="flaskserve", error="invalid_token"'


@dataclass(frozen=True)
class AuthPolicy:
    """The keys of one app and how a route's declared access is checked against them.

    Framework-free: :meth:`check` takes the request's method, route variables and
    headers as plain values, so the Flask hook and the prediction lane run the one check.
    """

    store: KeyStore
    default_model: Callable[[], str | None] | None

    def check(
        self, access: Access | None, method: str, view_args: Mapping[str, Any], headers: HeaderLookup
    ) -> ApiKey | None:
        """The key that may call a route declared with ``access``; ``None`` when none is needed.

        Raises :class:`~flaskserve.errors.Unauthorized` or :class:`~flaskserve.errors.Forbidden`.
        """
        if len(self.store) == 0:
            return None
        scope = required_scope(access, method, view_args, headers)
        if scope.name == "open":
            return None
        key = verified_key(self.store, headers)
        if scope.name == "predict" and scope.model is None and self.default_model is not None:
            scope = Scope("predict", self.default_model())
        if not key.allows(scope.name, scope.model):
            raise Forbidden(f"the API key {key.name!r} may not use this route: it needs {_describe(scope)}")
        return key


def auth_policy(app: Flask) -> AuthPolicy | None:
    """The policy :class:`ApiKeyAuth` installed on ``app``, if it did."""
    policy: AuthPolicy | None = app.extensions.get(EXTENSION_KEY)
    return policy


class ApiKeyAuth:
    """Require API keys on an app whose key store is not empty.

    ``default_model`` returns the name of the model that ``/predict`` serves, so that
    a key scoped to that one model (``predict:iris``) may use it; without it, those
    routes need the all-model ``predict`` scope.

    Initialise this before extensions whose hooks read the request body, so that
    unauthenticated requests are refused first.
    """

    def __init__(
        self,
        app: Flask | None = None,
        store: KeyStore | None = None,
        *,
        default_model: Callable[[], str | None] | None = None,
    ) -> None:
        if app is not None and store is not None:
            self.init_app(app, store, default_model=default_model)

    def init_app(
        self,
        app: Flask,
        store: KeyStore,
        *,
        default_model: Callable[[], str | None] | None = None,
    ) -> None:
        app.extensions[EXTENSION_KEY] = AuthPolicy(store=store, default_model=default_model)
        app.before_request(_authenticate)
        if len(store) == 0:
            log.warning(
                "no API keys: every route is open to anyone who can reach the server; "
                "create one with 'flaskserve keys create'"
            )
        else:
            log.info("API key authentication on", extra={"keys": len(store)})


def _authenticate() -> None:
    policy: AuthPolicy = current_app.extensions[EXTENSION_KEY]
    if len(policy.store) == 0:
        return
    rule = request.url_rule
    if rule is None:
        # No route matched: a valid key of any scope lets Flask answer 404 or 405.
        key: ApiKey | None = verified_key(policy.store, request.headers)
    else:
        key = policy.check(declared_access(rule), request.method, request.view_args or {}, request.headers)
    if key is not None:
        g.api_key_name = key.name


def verified_key(store: KeyStore, headers: HeaderLookup) -> ApiKey:
    """The valid key the request presents; :class:`~flaskserve.errors.Unauthorized` without one."""
    presented = _presented_key(headers)
    if presented is None:
        raise Unauthorized(headers={"WWW-Authenticate": _CHALLENGE})
    key = store.verify(presented)
    if key is None:
        raise Unauthorized(
            "the API key is not valid: check it, or ask for a new one",
            headers={"WWW-Authenticate": _INVALID_CHALLENGE},
        )
    return key


def _presented_key(headers: HeaderLookup) -> str | None:
    scheme, _, credentials = (headers.get("Authorization") or "").strip().partition(" ")
    # Auth schemes are case-insensitive (RFC 9110, section 11.1).
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return (headers.get(API_KEY_HEADER) or "").strip() or None


def _describe(scope: Scope) -> str:
    if scope.name == "predict" and scope.model is not None:
        return f"scope 'predict:{scope.model}' or 'predict'"
    return f"scope {scope.name!r}"
