"""Security headers: a Flask extension that adds them to every response.

* ``X-Content-Type-Options: nosniff`` everywhere, so a browser never runs a JSON
  body (which may echo client input) as a script or page.
* ``Cache-Control: no-store`` on prediction routes: predictions are computed from
  a client's private data and must not be kept by a browser or a proxy cache. A
  prediction route is one the route table marks ``predict``.
* ``Strict-Transport-Security`` when the server speaks TLS, so browsers keep using
  HTTPS. It is only sent when TLS is on: over plain HTTP it would be ignored, and on
  a host name later served over HTTPS elsewhere it could lock clients out.
* A ``Content-Security-Policy`` on HTML pages (the web page, the API docs), which
  stops injected scripts and framing by other sites.

Headers a view set itself are kept, except ``Cache-Control`` on predictions.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, Response, current_app, request

from flaskserve.web.header_list import MutableHeaders
from flaskserve.web.routing import declared_access

__all__ = [
    "DEFAULT_CONTENT_SECURITY_POLICY",
    "DEFAULT_HSTS_MAX_AGE",
    "EXTENSION_KEY",
    "HeaderPolicy",
    "SecurityHeaders",
    "header_policy",
]

EXTENSION_KEY = "flaskserve.security_headers"

#: Everything from this server only; no plugins, no framing, no ``<base>`` tricks.
#: ``data:`` images allow inline icons in the pages.
DEFAULT_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)

#: One year: browsers keep to HTTPS across long gaps between visits.
DEFAULT_HSTS_MAX_AGE = 365 * 24 * 60 * 60


@dataclass(frozen=True)
class HeaderPolicy:
    """The security headers of one app; :meth:`apply` adds them to any answer's headers."""

    hsts: str | None
    content_security_policy: str

    def apply(self, headers: MutableHeaders, *, prediction: bool, mimetype: str | None) -> None:
        """Add the headers to an answer of a prediction route or not, with the body's media type."""
        headers.setdefault("X-Content-Type-Options", "nosniff")
        if prediction:
            headers["Cache-Control"] = "no-store"
        if self.hsts is not None:
            headers.setdefault("Strict-Transport-Security", self.hsts)
        if mimetype == "text/html":
            headers.setdefault("Content-Security-Policy", self.content_security_policy)


def header_policy(app: Flask) -> HeaderPolicy | None:
    """The policy :class:`SecurityHeaders` installed on ``app``, if it did."""
    policy: HeaderPolicy | None = app.extensions.get(EXTENSION_KEY)
    return policy


class SecurityHeaders:
    """Add security headers to every response of an app.

    ``tls`` says whether the server is reached over HTTPS (directly or behind a
    proxy that terminates TLS); only then is ``Strict-Transport-Security`` sent.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        tls: bool = False,
        hsts_max_age: int = DEFAULT_HSTS_MAX_AGE,
        content_security_policy: str = DEFAULT_CONTENT_SECURITY_POLICY,
    ) -> None:
        if app is not None:
            self.init_app(
                app, tls=tls, hsts_max_age=hsts_max_age, content_security_policy=content_security_policy
            )

    def init_app(
        self,
        app: Flask,
        *,
        tls: bool = False,
        hsts_max_age: int = DEFAULT_HSTS_MAX_AGE,
        content_security_policy: str = DEFAULT_CONTENT_SECURITY_POLICY,
    ) -> None:
        app.extensions[EXTENSION_KEY] = HeaderPolicy(
            hsts=f"max-age={hsts_max_age}" if tls else None,
            content_security_policy=content_security_policy,
        )
        app.after_request(_add_headers)


def _add_headers(response: Response) -> Response:
    policy: HeaderPolicy = current_app.extensions[EXTENSION_KEY]
    policy.apply(response.headers, prediction=_is_prediction(), mimetype=response.mimetype)
    return response


def _is_prediction() -> bool:
    access = declared_access(request.url_rule)
    return access is not None and access.model_from is not None
