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
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Request, Response, current_app, g, request

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
from flaskserve.observability.metrics import Metrics
from flaskserve.web.errors import ERROR_ID_HEADER

__all__ = ["EXTENSION_KEY", "UNKNOWN", "RequestTracker", "bounded_labels", "started_at"]

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
class _TrackerState:
    registry: ModelRegistry
    metrics: Metrics | None
    #: bounded_labels answers by what was asked, valid for one registry generation.
    _memo: dict[tuple[Any, ...], tuple[str, str, str]] = field(default_factory=dict)
    _memo_generation: int = -1

    def labels(self, said: RequestNotes, view_args: dict[str, Any]) -> tuple[str, str, str]:
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
        app.extensions[EXTENSION_KEY] = _TrackerState(registry=registry, metrics=metrics)
        # Other extensions' before_request hooks may refuse the request (401, 429);
        # going first means even those responses carry an id and are timed.
        app.before_request_funcs.setdefault(None, []).insert(0, _begin)
        # Flask runs after_request hooks in reverse order of registration: going
        # first in the list means running last, on the response as the client gets it.
        app.after_request_funcs.setdefault(None, []).insert(0, _finish)
        app.teardown_request(_teardown)


def bounded_labels(
    registry: ModelRegistry, said: RequestNotes, view_args: dict[str, Any]
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


def _state() -> _TrackerState:
    state: _TrackerState = current_app.extensions[EXTENSION_KEY]
    return state


def _begin() -> None:
    set_request_id(accept_request_id(request.headers.get(REQUEST_ID_HEADER)))
    setattr(g, _STARTED_KEY, time.perf_counter())
    metrics = _state().metrics
    if metrics is not None:
        metrics.request_started()
        setattr(g, _IN_FLIGHT_KEY, True)


def _finish(response: Response) -> Response:
    # One lookup of each context-local: every proxy access costs a context-variable walk.
    req = request._get_current_object()  # type: ignore[attr-defined]
    state = _state()
    request_id = current_request_id()
    if request_id is None:
        # Only when something failed before this extension's first hook ran.
        request_id = accept_request_id(None)
        set_request_id(request_id)
    response.headers[REQUEST_ID_HEADER] = request_id

    said = notes()
    if said.cache_hit is not None:
        # Set here, for every protocol at once, from what the view noted of its prediction.
        response.headers[CACHE_HEADER] = "HIT" if said.cache_hit else "MISS"

    started: float | None = g.get(_STARTED_KEY)
    seconds = time.perf_counter() - started if started is not None else 0.0
    protocol = said.protocol or req.blueprint or "none"
    view_args = req.view_args or {}
    model, version, method = state.labels(said, view_args)
    if state.metrics is not None:
        state.metrics.request_answered(
            model=model,
            version=version,
            protocol=protocol,
            method=method,
            status=response.status_code,
            seconds=seconds,
        )
    if access_log.isEnabledFor(logging.INFO):
        _log_access(req, response, request_id, protocol, said, seconds, view_args)
    return response


def _teardown(error: BaseException | None) -> None:
    # Runs even when the response could not be built, so the gauge never drifts upwards.
    if g.pop(_IN_FLIGHT_KEY, False):
        metrics = _state().metrics
        if metrics is not None:
            metrics.request_ended()


def _log_access(
    req: Request,
    response: Response,
    request_id: str,
    protocol: str,
    said: RequestNotes,
    seconds: float,
    view_args: dict[str, Any],
) -> None:
    rule = req.url_rule
    fields: dict[str, Any] = {
        "request_id": request_id,
        "client": req.remote_addr,
        "http_method": req.method,
        "path": clip(req.path, 200),
        "route": rule.rule if rule is not None else None,
        "protocol": protocol,
        "model": clip(said.model) if said.model is not None else _route_value(view_args, "name"),
        "version": clip(said.version) if said.version is not None else _route_value(view_args, "version"),
        "method": said.method,
        "status": response.status_code,
        "rows": said.rows,
        "latency_ms": round(seconds * 1000, 3),
        "cache_hit": said.cache_hit,
        "batch_rows": said.batch_rows,
        "error_id": response.headers.get(ERROR_ID_HEADER) if response.status_code >= 500 else None,
    }
    # Absent facts are left out rather than logged as null, to keep lines short.
    extra = {key: value for key, value in fields.items() if value is not None}
    level = logging.ERROR if response.status_code >= 500 else logging.INFO
    # Built directly rather than through access_log.log(): that path walks the stack to
    # find the caller's file and line, which an access line never shows, on every request.
    record = access_log.makeRecord(access_log.name, level, __file__, 0, "request", (), None, extra=extra)
    access_log.handle(record)


def _route_value(view_args: dict[str, Any], key: str) -> str | None:
    value = view_args.get(key)
    return clip(str(value)) if value is not None else None
