"""Per-request bookkeeping: request id, timing, in-flight count, request metrics and one access log line.

A Flask extension: ``RequestTracker().init_app(app, registry=..., metrics=...)``
keeps its state in ``app.extensions`` and hooks every request, whatever
blueprint serves it, so each protocol gets the same logs and metrics by calling
:func:`flaskserve.observability.context.note` and nothing else.

Its ``before_request`` hook runs before every other one, so a request refused by
authentication or a rate limit still has an id and a start time; its
``after_request`` hook runs after every other one, so it logs and counts the
response the client really gets (and adds ``X-Request-ID`` to it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, current_app, g, request

from flaskserve.errors import clip
from flaskserve.models.registry import ModelRegistry
from flaskserve.observability.context import (
    REQUEST_ID_HEADER,
    RequestNotes,
    accept_request_id,
    current_request_id,
    notes,
    set_request_id,
)
from flaskserve.observability.logging import ACCESS_MESSAGE, queue_access_line
from flaskserve.observability.metrics import Metrics
from flaskserve.web.errors import ERROR_ID_HEADER
from flaskserve.web.header_list import MutableHeaders

__all__ = [
    "EXTENSION_KEY",
    "UNKNOWN",
    "RequestTracker",
    "TrackerState",
    "bounded_labels",
    "started_at",
    "tracker_state",
]

EXTENSION_KEY = "flaskserve.tracker"
#: The label value that stands for any model, version or method the server does not have.
UNKNOWN = "unknown"
#: Whether the prediction came from the cache: HIT or MISS, only when the model has a cache.
CACHE_HEADER = "X-Cache"

access_log = logging.getLogger("flaskserve.access")

_STARTED_KEY = "flaskserve_started"
# Bounded because client-chosen names are part of the key; past it, answers are just not remembered.
_MEMO_LIMIT = 4096
_IN_FLIGHT_KEY = "flaskserve_in_flight"


@dataclass
class TrackerState:
    """What the tracker keeps for one app, and the bookkeeping itself, framework-free.

    The Flask hooks and the prediction lane both call :meth:`begin`, :meth:`answered`
    and :meth:`end`, so a request is counted and logged the same way whichever served it.
    """

    registry: ModelRegistry
    metrics: Metrics | None
    #: bounded_labels answers by what was asked, valid for one registry generation.
    _memo: dict[tuple[Any, ...], tuple[str, str, str]] = field(default_factory=dict)
    _memo_generation: int = -1

    def labels(self, said: RequestNotes, view_args: Mapping[str, Any]) -> tuple[str, str, str]:
        """:func:`bounded_labels`, remembered: the same few answers come back on every request."""
        key = (said.model, said.version, said.method, view_args.get("name"), view_args.get("version"))
        generation = self.registry.generation
        if generation != self._memo_generation:
            self._memo = {}
            self._memo_generation = generation
        found = self._memo.get(key)
        if found is None:
            found = bounded_labels(self.registry, said, view_args)
            if len(self._memo) < _MEMO_LIMIT:
                self._memo[key] = found
        return found

    def begin(self, given_request_id: str | None) -> tuple[str, float]:
        """The request's id (the client's, if safe to echo) and start time; counts it in flight."""
        request_id = accept_request_id(given_request_id)
        started = time.perf_counter()
        if self.metrics is not None:
            self.metrics.request_started()
        return request_id, started

    def end(self) -> None:
        """The request has left, answered or not (the in-flight gauge never drifts upwards)."""
        if self.metrics is not None:
            self.metrics.request_ended()

    def answered(
        self,
        headers: MutableHeaders,
        status: int,
        *,
        request_id: str,
        said: RequestNotes,
        seconds: float,
        protocol: str,
        view_args: Mapping[str, Any],
        client: str | None,
        http_method: str,
        path: str,
        route: str | None,
    ) -> None:
        """Name the request in its answer's headers, count it and write its access line."""
        headers[REQUEST_ID_HEADER] = request_id
        if said.cache_hit is not None:
            # Set here, for every protocol at once, from what the view noted of its prediction.
            headers[CACHE_HEADER] = "HIT" if said.cache_hit else "MISS"
        model, version, method = self.labels(said, view_args)
        if self.metrics is not None:
            self.metrics.request_answered(
                model=model, version=version, protocol=protocol, method=method, status=status, seconds=seconds
            )
        if access_log.isEnabledFor(logging.INFO):
            error_id = headers.get(ERROR_ID_HEADER) if status >= 500 else None
            version_field = (
                clip(said.version) if said.version is not None else _route_value(view_args, "version")
            )
            fields: dict[str, Any] = {
                "request_id": request_id,
                "client": client,
                "http_method": http_method,
                "path": clip(path, 200),
                "route": route,
                "protocol": protocol,
                "model": clip(said.model) if said.model is not None else _route_value(view_args, "name"),
                "version": version_field,
                "method": said.method,
                "status": status,
                "rows": said.rows,
                "latency_ms": round(seconds * 1000, 3),
                "cache_hit": said.cache_hit,
                "batch_rows": said.batch_rows,
                "error_id": error_id,
            }
            _log_access(fields, status)


def tracker_state(app: Flask) -> TrackerState:
    """The tracker of ``app`` (installed by :class:`RequestTracker`)."""
    state: TrackerState = app.extensions[EXTENSION_KEY]
    return state


class RequestTracker:
    """Give every request an id, a log line and (with ``metrics``) its place in the request metrics.

    ``registry`` is the app's model registry; label values are checked against it
    so that requests naming models the server does not have share one ``unknown``
    label instead of adding series.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        registry: ModelRegistry | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        if app is not None and registry is not None:
            self.init_app(app, registry=registry, metrics=metrics)

    def init_app(self, app: Flask, *, registry: ModelRegistry, metrics: Metrics | None = None) -> None:
        app.extensions[EXTENSION_KEY] = TrackerState(registry=registry, metrics=metrics)
        # Other extensions' before_request hooks may refuse the request (401, 429);
        # going first means even those responses carry an id and are timed.
        app.before_request_funcs.setdefault(None, []).insert(0, _begin)
        # Flask runs after_request hooks in reverse order of registration: going
        # first in the list means running last, on the response as the client gets it.
        app.after_request_funcs.setdefault(None, []).insert(0, _finish)
        app.teardown_request(_teardown)


def bounded_labels(
    registry: ModelRegistry, said: RequestNotes, view_args: Mapping[str, Any]
) -> tuple[str, str, str]:
    """Model, version and method label values that only the server's own models can produce.

    The model comes from the view's notes or, when the view failed before noting
    it, from the route's ``name`` variable; anything the registry does not know
    becomes ``unknown``. An empty value means the request named none.
    """
    name = said.model if said.model is not None else view_args.get("name")
    if name is None:
        return "", "", ""
    entries = registry.entries(str(name))
    if not entries:
        return UNKNOWN, "", ""
    version = said.version if said.version is not None else view_args.get("version")
    version_label = ""
    if version is not None:
        version_label = str(version) if any(e.version == str(version) for e in entries) else UNKNOWN
    method_label = ""
    if said.method is not None:
        # A V2 request may ask for several outputs at once: "predict,predict_proba".
        asked = said.method.split(",")
        offered = any(
            e.model is not None and all(method in e.model.signature.methods for method in asked)
            for e in entries
        )
        method_label = said.method if offered else UNKNOWN
    return str(name), version_label, method_label


def started_at() -> float | None:
    """When the current request reached the app (``time.perf_counter()``), if the tracker saw it."""
    started: float | None = g.get(_STARTED_KEY)
    return started


def _state() -> TrackerState:
    state: TrackerState = current_app.extensions[EXTENSION_KEY]
    return state


def _begin() -> None:
    request_id, started = _state().begin(request.headers.get(REQUEST_ID_HEADER))
    set_request_id(request_id)
    setattr(g, _STARTED_KEY, started)
    setattr(g, _IN_FLIGHT_KEY, True)


def _finish(response: Response) -> Response:
    # One lookup of each context-local: every proxy access costs a context-variable walk.
    req = request._get_current_object()  # type: ignore[attr-defined]
    request_id = current_request_id()
    if request_id is None:
        # Only when something failed before this extension's first hook ran.
        request_id = accept_request_id(None)
        set_request_id(request_id)
    said = notes()
    started: float | None = g.get(_STARTED_KEY)
    rule = req.url_rule
    _state().answered(
        response.headers,
        response.status_code,
        request_id=request_id,
        said=said,
        seconds=time.perf_counter() - started if started is not None else 0.0,
        protocol=said.protocol or req.blueprint or "none",
        view_args=req.view_args or {},
        client=req.remote_addr,
        http_method=req.method,
        path=req.path,
        route=rule.rule if rule is not None else None,
    )
    return response


def _teardown(error: BaseException | None) -> None:
    # Runs even when the response could not be built, so the gauge never drifts upwards.
    if g.pop(_IN_FLIGHT_KEY, False):
        _state().end()


def _log_access(fields: dict[str, Any], status: int) -> None:
    # Absent facts are left out rather than logged as null, to keep lines short.
    extra = {key: value for key, value in fields.items() if value is not None}
    level = logging.ERROR if status >= 500 else logging.INFO
    if queue_access_line(access_log, level, extra, __file__):
        return
    # Built directly rather than through access_log.log(): that path walks the stack to
    # find the caller's file and line, which an access line never shows, on every request.
    record = access_log.makeRecord(access_log.name, level, __file__, 0, ACCESS_MESSAGE, (), None, extra=extra)
    access_log.handle(record)


def _route_value(view_args: Mapping[str, Any], key: str) -> str | None:
    value = view_args.get(key)
    return clip(str(value)) if value is not None else None
