"""CORS: which other sites' pages may call the API from a browser. Off unless origins are configured.

A browser only lets a page on another origin read a response that names that origin
in ``Access-Control-Allow-Origin``; servers that are not called from browsers need no
CORS at all, which is why it is off by default. ``*`` in the list allows any origin.

Credentials are never allowed (``Access-Control-Allow-Credentials`` is not sent):
clients authenticate with an API key they put in a header themselves, not with
cookies a browser would attach on its own, so there is nothing a hostile page could
ride on. Preflight requests (``OPTIONS``) need no key; Flask answers them with the
route's ``Allow`` header, which becomes ``Access-Control-Allow-Methods``.

The headers of any other answer are written by :func:`add_simple_headers`, which the
Flask hook and the prediction lane (:mod:`flaskserve.api.lane`) both call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flask import Flask, Response, current_app, request

from flaskserve.access import MODEL_NAME_HEADER, MODEL_VERSION_HEADER
from flaskserve.security.auth import API_KEY_HEADER
from flaskserve.web.errors import ERROR_ID_HEADER
from flaskserve.web.header_list import MutableHeaders

__all__ = [
    "EXTENSION_KEY",
    "AllowedOrigins",
    "Cors",
    "add_simple_headers",
    "allowed_origins",
    "replace_origins",
]

EXTENSION_KEY = "flaskserve.cors"

_ANY = "*"
#: Request headers a page may send: the key headers, JSON bodies, and the model choice.
_ALLOWED_HEADERS = ", ".join(
    ["Authorization", "Content-Type", API_KEY_HEADER, MODEL_NAME_HEADER, MODEL_VERSION_HEADER]
)
#: Response headers a page may read beyond the CORS-safelisted ones.
_EXPOSED_HEADERS = ", ".join(
    [
        "Retry-After",
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "RateLimit-Policy",
        MODEL_NAME_HEADER,
        MODEL_VERSION_HEADER,
        ERROR_ID_HEADER,
    ]
)
#: Seconds a browser may cache a preflight answer, so each call does not cost two requests.
_PREFLIGHT_MAX_AGE = 600


@dataclass(frozen=True)
class AllowedOrigins:
    """The origins whose pages may read the API's answers."""

    allowed: frozenset[str]

    def allows(self, origin: str) -> bool:
        return _ANY in self.allowed or origin in self.allowed


class Cors:
    """Answer browsers' cross-origin checks for the ``origins`` given; none turns CORS off."""

    def __init__(self, app: Flask | None = None, origins: Iterable[str] = ()) -> None:
        if app is not None:
            self.init_app(app, origins)

    def init_app(self, app: Flask, origins: Iterable[str] = ()) -> None:
        allowed = _normalized(origins)
        if not allowed:
            return
        app.extensions[EXTENSION_KEY] = AllowedOrigins(allowed)
        app.after_request(_add_headers)


def replace_origins(app: Flask, origins: Iterable[str]) -> bool:
    """Allow ``origins`` from the next response on (a reload); ``False`` when CORS is off in ``app``.

    CORS off when the app was built installed nothing to answer with: turning it on needs a new app.
    """
    allowed = _normalized(origins)
    if EXTENSION_KEY not in app.extensions:
        return not allowed
    app.extensions[EXTENSION_KEY] = AllowedOrigins(allowed)
    return True


def _normalized(origins: Iterable[str]) -> frozenset[str]:
    # Origins are compared as browsers send them: scheme, host and port, no trailing slash.
    return frozenset(origin.strip().rstrip("/") for origin in origins if origin.strip())


def allowed_origins(app: Flask) -> AllowedOrigins | None:
    """The origins :class:`Cors` installed on ``app`` (read per request: a reload replaces them)."""
    origins: AllowedOrigins | None = app.extensions.get(EXTENSION_KEY)
    return origins


def add_simple_headers(headers: MutableHeaders, origins: AllowedOrigins, origin: str | None) -> None:
    """The CORS headers of any answer but a preflight's, for a request that sent ``origin``."""
    # The answer depends on Origin: shared caches must not serve one origin's answer to another.
    vary = headers.get("Vary")
    if not vary:
        headers["Vary"] = "Origin"
    elif "origin" not in (part.strip().lower() for part in vary.split(",")):
        headers["Vary"] = f"{vary}, Origin"
    if not origin or not origins.allows(origin):
        return
    headers["Access-Control-Allow-Origin"] = _ANY if _ANY in origins.allowed else origin
    headers["Access-Control-Expose-Headers"] = _EXPOSED_HEADERS


def _add_headers(response: Response) -> Response:
    origins: AllowedOrigins = current_app.extensions[EXTENSION_KEY]
    origin = request.headers.get("Origin")
    add_simple_headers(response.headers, origins, origin)
    if (
        origin
        and origins.allows(origin)
        and request.method == "OPTIONS"
        and "Access-Control-Request-Method" in request.headers
    ):
        headers = response.headers
        allow = headers.get("Allow")
        if allow:
            headers["Access-Control-Allow-Methods"] = allow
        headers["Access-Control-Allow-Headers"] = _ALLOWED_HEADERS
        headers["Access-Control-Max-Age"] = str(_PREFLIGHT_MAX_AGE)
    return response
