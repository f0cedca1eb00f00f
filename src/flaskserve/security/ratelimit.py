"""Rate limits: a Flask extension, built on Flask-Limiter, that throttles abusive clients.

What is counted
    Requests per *client*, per *route class* and per *model*. The client is the name of
    the API key a request authenticated with, or its address when it carries none (the
    address comes after :class:`~werkzeug.middleware.proxy_fix.ProxyFix`, so it is the
    real client's only for the proxy hops the operator trusts). The route class is the
    scope the route table gives a route (``predict``, ``read``, ``admin``), so that
    browsing the model list does not spend a client's prediction budget. The model is
    the one a ``predict`` route acts on; names the registry does not serve share one
    counter, so a client cannot create counters by inventing model names.

Which limit
    ``settings.rate_limit`` (e.g. ``100/minute``), which a model's own ``rate_limit``
    overrides on its prediction routes. No limit at all is the default: the right
    number depends on what a model costs, which only the operator knows, and a silent
    limit would surprise the first load test. Health probes, ``/metrics``, CORS
    preflights and URLs that match no route are never limited.

Where counters live
    ``memory://`` keeps them in each gunicorn worker, so with *N* workers a client
    gets up to *N* times the limit; ``redis://HOST:PORT/DB`` shares them between
    workers and replicas. When Redis cannot be reached, ``rate_limit_fallback``
    decides: ``memory`` counts in the worker's memory until Redis answers again,
    ``refuse`` answers 503. Neither turns into a 500.

What a client sees
    Every limited response carries ``RateLimit-Limit``, ``RateLimit-Remaining``,
    ``RateLimit-Reset`` (seconds until the window resets) and ``RateLimit-Policy``
    (``100;w=60``), as the IETF ``RateLimit`` header draft spells them. A refused
    request gets the project's 429 JSON error with ``Retry-After``.

Windows are fixed and start at a counter's first hit: one atomic increment per
request and limit, so the check costs one Redis round trip.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter, RateLimitExceeded, RequestLimit
from limits.errors import ConfigurationError, StorageError

from flaskserve.access import required_scope
from flaskserve.credentials import redact_url, scrub
from flaskserve.errors import ConfigError, ServiceUnavailable, TooManyRequests
from flaskserve.models.registry import ModelRegistry
from flaskserve.settings import Settings
from flaskserve.web.errors import render_error
from flaskserve.web.routing import declared_access

__all__ = ["EXTENSION_KEY", "RateLimits", "counts_per_worker", "replace_limits"]

log = logging.getLogger("flaskserve.security")

EXTENSION_KEY = "flaskserve.ratelimit"

#: Route classes that are never limited: orchestrators and scrapers must always get through.
_UNLIMITED = frozenset({"open", "metrics"})
#: The model part of a counter for routes that act on no model, or on one the registry does not serve.
_NO_MODEL = "-"
#: Seconds a client is asked to wait when the counters cannot be reached and the policy is to refuse.
_STORAGE_RETRY_AFTER = 5
#: Kept short so that a Redis that hangs (rather than refusing connections) stalls a request briefly.
_REDIS_TIMEOUT_S = 1
_LOCAL_SCHEMES = frozenset({"memory"})


@dataclass(frozen=True)
class _Target:
    """What one request is counted against, apart from who sent it."""

    route_class: str
    model: str | None


@dataclass(frozen=True)
class _State:
    limiter: Limiter
    settings: Settings
    registry: ModelRegistry


class RateLimits:
    """Throttle clients of an app by the rate limits in ``settings``.

    Initialise this after :class:`~flaskserve.security.auth.ApiKeyAuth`: its check
    runs after the key check, so it counts by key name, and a request without a valid
    key is refused before it costs a counter. :meth:`init_app` installs nothing when
    neither the settings nor any served model set a limit.
    """

    def __init__(
        self,
        app: Flask | None = None,
        settings: Settings | None = None,
        registry: ModelRegistry | None = None,
    ) -> None:
        if app is not None and settings is not None and registry is not None:
            self.init_app(app, settings, registry)

    def init_app(self, app: Flask, settings: Settings, registry: ModelRegistry) -> None:
        if not _any_limit(settings, registry):
            log.info("rate limiting off: no rate_limit is configured")
            return
        fallback = settings.rate_limit_fallback == "memory"
        storage_options: dict[str, str | int] = {"wrap_exceptions": True}
        if _scheme(settings.rate_limit_storage).startswith("redis"):
            storage_options.update(socket_connect_timeout=_REDIS_TIMEOUT_S, socket_timeout=_REDIS_TIMEOUT_S)
        limiter = Limiter(
            _counter_key,
            application_limits=[_limit_for_request],
            storage_uri=settings.rate_limit_storage,
            storage_options=storage_options,
            strategy="fixed-window",
            key_prefix=settings.rate_limit_key_prefix,
            # The headers are written below in the draft's spelling, which Flask-Limiter lacks.
            headers_enabled=False,
            in_memory_fallback_enabled=fallback,
            # With a fallback, a failure of the fallback too must not fail the request.
            swallow_errors=fallback,
        )
        limiter.request_filter(_is_unlimited)
        try:
            limiter.init_app(app)
        except (ConfigurationError, ValueError) as exc:
            raise ConfigError(_storage_problem(settings.rate_limit_storage, exc)) from exc
        app.extensions[EXTENSION_KEY] = _State(limiter=limiter, settings=settings, registry=registry)
        app.register_error_handler(RateLimitExceeded, _refuse_over_limit)
        app.register_error_handler(StorageError, _refuse_without_storage)
        app.after_request(_add_headers)
        log.info(
            "rate limiting on",
            extra={
                "rate_limit": settings.rate_limit,
                "storage": redact_url(settings.rate_limit_storage),
                "fallback": settings.rate_limit_fallback,
            },
        )
        _report_unreachable_storage(limiter, settings)


def replace_limits(app: Flask, settings: Settings) -> bool:
    """Count by ``settings``' limits from the next request on (a reload); ``False`` when ``app`` has none.

    An app built without any limit installed no limiter, so turning limits on needs a new app;
    the counters, their storage and the fallback stay those the limiter was built with.
    """
    state: _State | None = app.extensions.get(EXTENSION_KEY)
    if state is None:
        return not _any_configured(settings)
    app.extensions[EXTENSION_KEY] = replace(state, settings=settings)
    return True


def _report_unreachable_storage(limiter: Limiter, settings: Settings) -> None:
    """Say at start-up, not at the first request, what happens while the counters cannot be reached.

    The server starts either way: the storage may come up later, and ``rate_limit_fallback``
    decides what happens until it does.
    """
    if _scheme(settings.rate_limit_storage) in _LOCAL_SCHEMES:
        return
    try:
        reachable = bool(limiter.storage.check())
    except Exception:
        reachable = False
    if reachable:
        return
    shown = redact_url(settings.rate_limit_storage)
    fields = {"storage": shown, "fallback": settings.rate_limit_fallback}
    if settings.rate_limit_fallback == "memory":
        log.warning(
            f"rate-limit storage {shown} cannot be reached: until it answers, each worker counts "
            "requests in its own memory (rate_limit_fallback = memory)",
            extra=fields,
        )
    else:
        log.error(
            f"rate-limit storage {shown} cannot be reached: until it answers, every rate-limited "
            "request is answered 503 (rate_limit_fallback = refuse)",
            extra=fields,
        )


def counts_per_worker(settings: Settings, workers: int) -> bool:
    """Whether rate limits are on and counted by each of several workers alone (so they multiply).

    ``flaskserve serve`` logs a warning when this is true, as the limit a client
    really gets is then ``workers`` times the one configured.
    """
    return (
        workers > 1 and _scheme(settings.rate_limit_storage) in _LOCAL_SCHEMES and _any_configured(settings)
    )


def _any_configured(settings: Settings) -> bool:
    return settings.rate_limit is not None or any(m.rate_limit for m in settings.models.values())


def _any_limit(settings: Settings, registry: ModelRegistry) -> bool:
    return _any_configured(settings) or any(m.settings.rate_limit for m in registry.models())


def _scheme(uri: str) -> str:
    return urlsplit(uri).scheme.lower()


def _storage_problem(uri: str, exc: Exception) -> str:
    scheme = _scheme(uri)
    if scheme.startswith("redis") and "prerequisite" in str(exc).lower():
        return "rate_limit_storage uses Redis, which needs the redis package: pip install 'flaskserve[redis]'"
    return (
        f"rate_limit_storage {redact_url(uri)!r} is not usable ({scrub(str(exc), uri)}); "
        "use 'memory://' or 'redis://HOST:PORT/DB'"
    )


def _state() -> _State:
    state: _State = current_app.extensions[EXTENSION_KEY]
    return state


def _target() -> _Target | None:
    """The route class and model of the current request, or ``None`` if it is never limited.

    Computed once per request: the filter, the key and the limit all need it.
    """
    if "_flaskserve_rate_target" in g:
        cached: _Target | None = g._flaskserve_rate_target
        return cached
    target: _Target | None = None
    rule = request.url_rule
    if rule is not None:
        scope = required_scope(
            declared_access(rule), request.method, request.view_args or {}, request.headers
        )
        if scope.name not in _UNLIMITED:
            model = scope.model
            if scope.name == "predict" and model is None:
                model = _state().registry.default_name
            target = _Target(scope.name, model)
    g._flaskserve_rate_target = target
    return target


def _is_unlimited() -> bool:
    return _target() is None


def _client() -> str:
    key_name = g.get("api_key_name")
    if key_name:
        return f"key:{key_name}"
    return f"addr:{request.remote_addr or 'unknown'}"


def _served_model(name: str | None) -> str | None:
    if name is None or name not in _state().registry.names():
        return None
    return name


def _counter_key(*_: object) -> str:
    target = _target()
    route_class = target.route_class if target is not None else "none"
    model = _served_model(target.model if target is not None else None) or _NO_MODEL
    return f"{_client()}/{route_class}/{model}"


def _limit_for_request() -> str:
    """The limit of the current request; an empty string means none."""
    target = _target()
    if target is None:
        return ""
    state = _state()
    model = _served_model(target.model)
    if target.route_class == "predict" and model is not None:
        override = _model_limit(state, model)
        if override:
            return override
    return state.settings.rate_limit or ""


def _model_limit(state: _State, name: str) -> str | None:
    """The model's own limit, from its loaded settings (``model-settings.toml`` merged with the config)."""
    for entry in reversed(state.registry.entries(name)):
        if entry.model is not None and entry.model.settings.rate_limit:
            return entry.model.settings.rate_limit
    return state.settings.model_settings(name).rate_limit


def _refuse_over_limit(error: RateLimitExceeded) -> Response:
    current = _state().limiter.current_limit
    limit = error.limit.limit
    window = _describe_window(limit.get_expiry())
    retry_after = limit.get_expiry()
    if current is not None:
        try:
            retry_after = _seconds_until_reset(current)
        except StorageError:
            # The counters went away since they refused this request: the refusal stands, and a
            # whole window is a safe wait.
            log.debug("Retry-After is a whole window: storage unreachable", exc_info=True)
    target = _target()
    on = f" on model {target.model!r}" if target is not None and _served_model(target.model) else ""
    wait = max(1, retry_after)
    message = f"too many requests{on}: the limit is {limit.amount} per {window}; retry in {wait} s"
    return render_error(TooManyRequests(message, headers={"Retry-After": str(wait)}))


def _refuse_without_storage(error: StorageError) -> Response:
    shown = scrub(str(error.storage_error), _state().settings.rate_limit_storage)
    log.error("rate-limit storage unreachable; refusing requests", extra={"error": shown})
    return render_error(
        ServiceUnavailable(
            "rate limiting is unavailable, so requests are refused for now; retry shortly",
            headers={"Retry-After": str(_STORAGE_RETRY_AFTER)},
        )
    )


def _describe_window(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"
    return "second" if seconds == 1 else f"{seconds} seconds"


def _seconds_until_reset(current: RequestLimit) -> int:
    # ``reset_at`` is rounded up to the next whole second; the window's own time is exact.
    reset_time = float(current.window[0])
    return min(current.limit.get_expiry(), max(0, math.ceil(reset_time - time.time())))


def _add_headers(response: Response) -> Response:
    current = _state().limiter.current_limit
    if current is None:
        return response
    try:
        remaining = current.remaining
        reset = _seconds_until_reset(current)
    except Exception:
        # The counters went away between the check and the response: the headers are
        # a courtesy, the response itself is what matters.
        log.debug("rate-limit headers left out: storage unreachable", exc_info=True)
        return response
    limit = current.limit
    headers = response.headers
    headers["RateLimit-Limit"] = str(limit.amount)
    headers["RateLimit-Remaining"] = str(max(0, remaining))
    headers["RateLimit-Reset"] = str(reset)
    headers["RateLimit-Policy"] = f"{limit.amount};w={limit.get_expiry()}"
    return response
