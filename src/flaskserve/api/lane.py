"""The prediction lane: the common prediction request, served beside Flask rather than through it.

Flask's request context, routing, hooks and response objects cost a one-row
prediction about as much again as the prediction itself. The lane is a WSGI
app in front of Flask's: it serves a ``POST`` to a prediction route of the
protocol table and hands every other request, unchanged, to Flask.

What it runs is what Flask runs, called rather than copied: the tracker's
request id, timing, metrics and access line
(:class:`~flaskserve.observability.tracker.TrackerState`), the repository
journal of sibling workers, the key check against the route's declared access
(:class:`~flaskserve.security.auth.AuthPolicy`), the rate limits
(:class:`~flaskserve.security.ratelimit.RateLimitPolicy`: the same counters,
keys, headers and refusals), the body reader and its limits
(:func:`~flaskserve.web.bodies.read_declared_body`), the prediction edge itself
(:func:`~flaskserve.api.predict.answer`: protocols, inference service, drift),
the inference log (:func:`~flaskserve.observability.monitoring.queue_record`),
the CORS headers of a cross-origin call (:func:`~flaskserve.security.cors.add_simple_headers`),
the security headers (:class:`~flaskserve.security.headers.HeaderPolicy`), the
``Connection: close`` of refused unread bodies and the one error renderer
(:func:`~flaskserve.web.errors.render_any`). Its routes are the protocol table's
own declarations, matched by a map of just those rules.

What it leaves to Flask, whole: any other method or route, a query string, a
body without ``Content-Length`` (chunked), a path that is not ASCII or under a
script name, and CORS preflights (``OPTIONS``). ``fast_lane = false`` sends
everything through Flask.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt
from flask import Flask
from werkzeug.datastructures import EnvironHeaders
from werkzeug.exceptions import HTTPException
from werkzeug.http import parse_options_header
from werkzeug.routing import MapAdapter, RoutingException
from werkzeug.utils import get_content_type

from flaskserve.api.predict import Asked, answer, blueprint_name
from flaskserve.models.served import ServedModel
from flaskserve.observability.context import RequestNotes, bind_request_id, unbind_request_id
from flaskserve.observability.monitoring import Exchange, get_monitoring, queue_record
from flaskserve.observability.tracker import tracker_state
from flaskserve.protocols.table import ProtocolTable
from flaskserve.protocols.wire import InferenceProtocol, PredictRoute
from flaskserve.runtime import get_runtime
from flaskserve.security.auth import auth_policy
from flaskserve.security.cors import add_simple_headers, allowed_origins
from flaskserve.security.headers import header_policy
from flaskserve.security.ratelimit import Decision, rate_limit_policy
from flaskserve.serving.occupancy import WSGIApp
from flaskserve.web.bodies import must_close, name_model, read_declared_body
from flaskserve.web.errors import render_any
from flaskserve.web.header_list import HeaderList
from flaskserve.web.routing import DeclaredMap, DeclaredRule

__all__ = ["PredictionLane", "install"]

_CHARSET = "utf-8"
_NO_QUERY: dict[str, str] = {}


def install(app: Flask, protocols: ProtocolTable) -> bool:
    """Put the lane in front of ``app.wsgi_app`` if the settings want it and the app allows it.

    Call it once every extension is initialised, before the WSGI middleware that
    must see every request (request counting, proxy headers) wraps the app.
    """
    if not get_runtime(app).settings.fast_lane:
        return False
    app.wsgi_app = PredictionLane(app, protocols)  # type: ignore[method-assign]
    return True


@dataclass(frozen=True)
class _Target:
    """A prediction route, as the lane serves it."""

    protocol: InferenceProtocol[Any]
    route: PredictRoute
    #: The ``protocol`` label of a request refused before the edge ran.
    blueprint: str


class PredictionLane:
    """A WSGI app that serves prediction routes itself and hands anything else to ``app.wsgi_app``."""

    def __init__(self, app: Flask, protocols: ProtocolTable) -> None:
        self._flask: WSGIApp = app.wsgi_app
        runtime = self._runtime = get_runtime(app)
        self._tracking = tracker_state(app)
        self._auth = auth_policy(app)
        self._limits = rate_limit_policy(app)
        self._headers = header_policy(app)
        self._monitoring = get_monitoring(app)
        self._journal = runtime.reloader.journal is not None
        self._max_body = runtime.settings.limits.max_body_bytes
        self._targets: list[_Target] = []
        rules = []
        for protocol in protocols:
            for route in protocol.routes:
                rules.append(
                    DeclaredRule(
                        route.rule,
                        endpoint=len(self._targets),
                        methods=["POST"],
                        access=route.access,
                        operation=route.operation,
                    )
                )
                self._targets.append(_Target(protocol, route, blueprint_name(protocol)))
        url_map = DeclaredMap(rules, merge_slashes=app.url_map.merge_slashes)
        # One adapter for every request: the lane matches the path alone (no host, no script name).
        self._routes: MapAdapter = url_map.bind("")
        self._app = app
        self._hooks = _hooks(app)
        self._open: bool | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if (
            environ["REQUEST_METHOD"] != "POST"
            or environ.get("QUERY_STRING")
            or not environ.get("CONTENT_LENGTH")
            or "HTTP_TRANSFER_ENCODING" in environ
            or environ.get("SCRIPT_NAME")
        ):
            return self._flask(environ, start_response)
        path: str = environ.get("PATH_INFO") or "/"
        if not path.isascii():
            return self._flask(environ, start_response)
        try:
            rule, view_args = self._routes.match(path, "POST", return_rule=True)
        except (HTTPException, RoutingException):
            # No prediction route, or one Flask answers with a redirect: Flask's answer either way.
            return self._flask(environ, start_response)
        if not self._open and (self._open is False or not self._opens()):
            return self._flask(environ, start_response)
        return self._serve(environ, start_response, rule, view_args)

    def _opens(self) -> bool:
        """At the first request: whether the app still has the hooks it had when the lane was installed.

        A hook added later (a test's, an embedding app's) would be skipped here, so the
        lane then leaves every request to Flask. Either way setup is over from now on,
        as Flask declares it after its own first request: adding a hook then fails.
        """
        self._open = _hooks(self._app) == self._hooks
        self._app._got_first_request = True
        return self._open

    def _serve(
        self, environ: dict[str, Any], start_response: Any, rule: Any, view_args: Mapping[str, Any]
    ) -> Iterable[bytes]:
        target: _Target = self._targets[rule.endpoint]
        tracking = self._tracking
        request_id, started = tracking.begin(environ.get("HTTP_X_REQUEST_ID"))
        token = bind_request_id(request_id)
        said = RequestNotes()
        key_name: str | None = None
        limited: Decision | None = None
        exchange: Exchange | None = None
        monitoring = self._monitoring

        def observe(model: ServedModel, matrix: npt.NDArray[Any], results: Mapping[str, Any]) -> None:
            nonlocal exchange
            exchange = monitoring.observe(model, matrix, results)

        try:
            headers: HeaderList
            try:
                if self._journal:
                    self._runtime.reloader.before_request()
                request_headers = EnvironHeaders(environ)
                access = target.route.access
                if self._auth is not None:
                    key = self._auth.check(access, "POST", view_args, request_headers)
                    key_name = key.name if key is not None else None
                if self._limits is not None:
                    limited = self._limits.decide(
                        access,
                        "POST",
                        view_args,
                        request_headers,
                        key_name=key_name,
                        address=environ.get("REMOTE_ADDR"),
                    )
                    if limited is not None and limited.refusal is not None:
                        raise limited.refusal
                mimetype, params = parse_options_header(environ.get("CONTENT_TYPE", ""))
                asked = Asked(
                    view_args=view_args,
                    headers=request_headers,
                    mimetype=mimetype.lower(),
                    mimetype_params=params,
                    query=_NO_QUERY,
                    read_body=_body_reader(environ, self._max_body),
                )
                reply, model = answer(
                    self._runtime,
                    target.protocol,
                    access,
                    asked,
                    said,
                    observe,
                    explains=target.route.explains,
                )
                status, status_line, body = 200, "200 OK", reply.body
                headers = HeaderList(
                    [
                        ("Content-Type", get_content_type(reply.mimetype, _CHARSET)),
                        ("Content-Length", str(len(body))),
                    ]
                )
                for name, value in reply.headers.items():
                    headers[name] = value
                name_model(headers, model)
                content_type: str | None = reply.mimetype
            except Exception as error:
                response = render_any(error)
                status, status_line, body = response.status_code, response.status, response.get_data()
                headers = HeaderList(response.headers.to_wsgi_list())
                content_type = response.mimetype
            # The response hooks, in the order Flask runs them on a prediction route's answer.
            origins = allowed_origins(self._app)
            if origins is not None:
                add_simple_headers(headers, origins, environ.get("HTTP_ORIGIN"))
            if self._headers is not None:
                self._headers.apply(headers, prediction=True, mimetype=content_type)
            if limited is not None:
                limited.add_headers(headers)
            if status >= 400 and must_close(environ):
                headers["Connection"] = "close"
            queue_record(
                monitoring,
                said,
                exchange,
                status=status,
                started=started,
                request_id=request_id,
                key_name=key_name,
            )
            path = environ.get("PATH_INFO") or "/"
            tracking.answered(
                headers,
                status,
                request_id=request_id,
                said=said,
                seconds=time.perf_counter() - started,
                protocol=said.protocol or target.blueprint,
                view_args=view_args,
                client=environ.get("REMOTE_ADDR"),
                http_method="POST",
                path="/" + path.lstrip("/"),
                route=rule.rule,
            )
            start_response(status_line, headers)
            return [body]
        finally:
            unbind_request_id(token)
            tracking.end()


def _hooks(app: Flask) -> tuple[int, ...]:
    """How many request hooks and error handlers ``app`` has, in all its blueprints."""
    tables = (
        app.before_request_funcs,
        app.after_request_funcs,
        app.teardown_request_funcs,
        app.url_value_preprocessors,
        app.url_default_functions,
    )
    handlers = sum(len(by_code) for spec in app.error_handler_spec.values() for by_code in spec.values())
    return (*(sum(len(funcs) for funcs in table.values()) for table in tables), handlers)


def _body_reader(environ: dict[str, Any], limit: int) -> Callable[[], bytes]:
    return lambda: read_declared_body(environ, limit)
