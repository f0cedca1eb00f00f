"""Rate limits: a policy that throttles abusive clients, and the Flask extension that applies it.

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
request, which also tells the count, and one read of the window's end for the
headers — two Redis round trips.

Who applies it
    :class:`RateLimitPolicy` decides without Flask, from the route's declared access,
    the request's method, path arguments and headers, the key name and the client
    address; it counts in the ``limits`` library's storage itself, as that library's
    fixed-window strategy does, but reads the count from the increment rather than
    again. The Flask hooks :class:`RateLimits` installs and the prediction lane
    (:mod:`flaskserve.api.lane`) both call it, so both count in the same counters and
    answer with the same headers and errors.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, request
from limits import RateLimitItem, parse
from limits.errors import ConfigurationError, StorageError
from limits.storage import Storage, storage_from_string

from flaskserve.access import Access, HeaderLookup, required_scope
from flaskserve.credentials import redact_url, scrub
from flaskserve.errors import ConfigError, FlaskserveError, ServiceUnavailable, TooManyRequests
from flaskserve.models.registry import ModelRegistry
from flaskserve.security.memory_counters import MemoryCounters
from flaskserve.settings import Settings
from flaskserve.web.header_list import MutableHeaders
from flaskserve.web.routing import declared_access

__all__ = [
    "EXTENSION_KEY",
    "Decision",
    "RateLimitPolicy",
    "RateLimits",
    "counts_per_worker",
    "rate_limit_policy",
    "replace_limits",
]

log = logging.getLogger("flaskserve.security")

EXTENSION_KEY = "flaskserve.ratelimit"

#: Route classes that are never limited: orchestrators and scrapers must always get through.
_UNLIMITED = frozenset({"open", "metrics"})
#: The model part of a counter for routes that act on no model, or on one the registry does not serve.
_NO_MODEL = "-"
#: The last part of every counter's name: the one the counters had when Flask-Limiter named them,
#: so that a server upgraded in place keeps counting in the same keys.
_SCOPE = "global"
#: Seconds a client is asked to wait when the counters cannot be reached and the policy is to refuse.
_STORAGE_RETRY_AFTER = 5
#: Kept short so that a Redis that hangs (rather than refusing connections) stalls a request briefly.
_REDIS_TIMEOUT_S = 1
#: A dead storage is looked at again after 1, 2, 4 … 2**_MAX_BACKOFF_STEP seconds, then 1 s again.
_MAX_BACKOFF_STEP = 5
_LOCAL_SCHEMES = frozenset({"memory"})
_G_DECISION = "_flaskserve_rate_decision"


@dataclass(frozen=True)
class _Target:
    """What one request is counted against, apart from who sent it."""

    route_class: str
    model: str | None


@dataclass(frozen=True)
class Decision:
    """What the policy decided for one request: the headers to add, and a refusal if there is one.

    ``limit`` is ``None`` when the counters could not be read back (the headers are then left
    out: they are a courtesy, the answer itself is what matters).
    """

    limit: RateLimitItem | None = None
    remaining: int = 0
    reset: int = 0
    refusal: FlaskserveError | None = None

    def add_headers(self, headers: MutableHeaders) -> None:
        """Write the ``RateLimit-*`` headers into ``headers`` (Werkzeug's or the lane's)."""
        limit = self.limit
        if limit is None:
            return
        headers["RateLimit-Limit"] = str(limit.amount)
        headers["RateLimit-Remaining"] = str(self.remaining)
        headers["RateLimit-Reset"] = str(self.reset)
        headers["RateLimit-Policy"] = f"{limit.amount};w={limit.get_expiry()}"


class RateLimitPolicy:
    """The rate-limit decision for one request, without Flask: both the Flask hook and the lane call it.

    It owns the counters' storage, the memory fallback used while that storage is
    unreachable (``rate_limit_fallback = memory``) and the settings of the limits,
    which a reload may replace (:meth:`replace_settings`).
    """

    def __init__(self, settings: Settings, registry: ModelRegistry) -> None:
        self.storage = _storage(settings.rate_limit_storage)
        fallback = settings.rate_limit_fallback == "memory"
        self._fallback: Storage | None = MemoryCounters() if fallback else None
        self._prefix = settings.rate_limit_key_prefix
        self.settings = settings
        self.registry = registry
        self._parsed: dict[str, RateLimitItem] = {}
        self._storage_dead = False
        self._backoff_step = 0
        self._last_look = time.monotonic()
        self._lock = threading.Lock()

    def replace_settings(self, settings: Settings) -> None:
        """Count by ``settings``' limits from the next request on; storage and fallback stay."""
        self.settings = settings

    def decide(
        self,
        access: Access | None,
        method: str,
        view_args: Mapping[str, Any],
        headers: HeaderLookup,
        *,
        key_name: str | None,
        address: str | None,
    ) -> Decision | None:
        """Count one request; ``None`` when no limit applies to it.

        ``access`` is the matched route's declared access (``None`` for a route that
        declares none); ``key_name`` the name of the key the request authenticated
        with; ``address`` the client's, as :class:`~werkzeug.middleware.proxy_fix.ProxyFix`
        left it. A refused request's decision carries the error to answer with.
        """
        target = self._target(access, method, view_args, headers)
        if target is None:
            return None
        model = self._served_model(target.model)
        limit = self._limit(target, model)
        if limit is None:
            return None
        client = f"key:{key_name}" if key_name else f"addr:{address or 'unknown'}"
        counter = limit.key_for(self._prefix, f"{client}/{target.route_class}/{model or _NO_MODEL}", _SCOPE)
        try:
            return self._count(self._current_storage(), limit, counter, model)
        except StorageError as error:
            if self._fallback is None:
                return Decision(refusal=self._unavailable(error))
            if not self._storage_dead:
                log.warning("rate-limit storage unreachable - counting in memory until it answers")
                self._mark_dead()
                try:
                    return self._count(self._fallback, limit, counter, model)
                except StorageError:
                    pass
            # The fallback failed too: a failure to count must not fail the request.
            log.exception("rate limits could not be counted; the request is let through")
            return None

    def _count(self, storage: Storage, limit: RateLimitItem, counter: str, model: str | None) -> Decision:
        count = storage.incr(counter, limit.get_expiry())
        allowed = count <= limit.amount
        try:
            reset_at = storage.get_expiry(counter)
        except StorageError:
            # The counters went away since they counted this request: the headers are left out,
            # and a refusal stands with a whole window as a safe wait.
            log.debug("rate-limit headers left out: storage unreachable", exc_info=True)
            return Decision(refusal=None if allowed else _too_many(limit, model, limit.get_expiry()))
        # ``reset_at`` is the window's end in seconds since the epoch, not rounded.
        reset = min(limit.get_expiry(), max(0, math.ceil(float(reset_at) - time.time())))
        refusal = None if allowed else _too_many(limit, model, reset)
        return Decision(limit=limit, remaining=max(0, limit.amount - count), reset=reset, refusal=refusal)

    def _current_storage(self) -> Storage:
        """The storage, or the memory fallback while the storage is known dead.

        A dead storage is looked at again with an exponential back-off, so that a Redis that
        is down costs a request a ping now and then rather than a time-out every time.
        """
        if not self._storage_dead or self._fallback is None:
            return self.storage
        if self._time_to_look() and self._storage_answers():
            log.info("rate-limit storage recovered: counting in it again")
            with self._lock:
                self._storage_dead = False
                self._backoff_step = 0
            return self.storage
        return self._fallback

    def _mark_dead(self) -> None:
        with self._lock:
            self._storage_dead = True
            self._last_look = time.monotonic()
            self._backoff_step = 0

    def _time_to_look(self) -> bool:
        with self._lock:
            if self._backoff_step > _MAX_BACKOFF_STEP:
                self._backoff_step = 0
            if time.monotonic() - self._last_look <= 2**self._backoff_step:
                return False
            self._last_look = time.monotonic()
            self._backoff_step += 1
            return True

    def _storage_answers(self) -> bool:
        try:
            return bool(self.storage.check())
        except Exception:
            return False

    def _unavailable(self, error: StorageError) -> ServiceUnavailable:
        shown = scrub(str(error.storage_error), self.settings.rate_limit_storage)
        log.error("rate-limit storage unreachable; refusing requests", extra={"error": shown})
        return ServiceUnavailable(
            "rate limiting is unavailable, so requests are refused for now; retry shortly",
            headers={"Retry-After": str(_STORAGE_RETRY_AFTER)},
        )

    def _target(
        self, access: Access | None, method: str, view_args: Mapping[str, Any], headers: HeaderLookup
    ) -> _Target | None:
        scope = required_scope(access, method, view_args, headers)
        if scope.name in _UNLIMITED:
            return None
        model = scope.model
        if scope.name == "predict" and model is None:
            model = self.registry.default_name
        return _Target(scope.name, model)

    def _served_model(self, name: str | None) -> str | None:
        if name is None or name not in self.registry.names():
            return None
        return name

    def _limit(self, target: _Target, model: str | None) -> RateLimitItem | None:
        text: str | None = None
        if target.route_class == "predict" and model is not None:
            text = self._model_limit(model)
        text = text or self.settings.rate_limit
        if not text:
            return None
        parsed = self._parsed.get(text)
        if parsed is None:
            parsed = self._parsed[text] = parse(text)
        return parsed

    def _model_limit(self, name: str) -> str | None:
        """The model's own limit, from its loaded settings (``model-settings.toml`` and the config)."""
        for entry in reversed(self.registry.entries(name)):
            if entry.model is not None and entry.model.settings.rate_limit:
                return entry.model.settings.rate_limit
        # Not ``settings.model_settings(name)``: that builds default settings for an unlisted model.
        configured = self.settings.models.get(name)
        return configured.rate_limit if configured is not None else None

    def report_unreachable_storage(self) -> None:
        """Say at start-up, not at the first request, what happens while the counters cannot be reached.

        The server starts either way: the storage may come up later, and ``rate_limit_fallback``
        decides what happens until it does.
        """
        settings = self.settings
        if _scheme(settings.rate_limit_storage) in _LOCAL_SCHEMES or self._storage_answers():
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
        policy = RateLimitPolicy(settings, registry)
        app.extensions[EXTENSION_KEY] = policy
        app.before_request(_check)
        app.after_request(_add_headers)
        log.info(
            "rate limiting on",
            extra={
                "rate_limit": settings.rate_limit,
                "storage": redact_url(settings.rate_limit_storage),
                "fallback": settings.rate_limit_fallback,
            },
        )
        policy.report_unreachable_storage()


def rate_limit_policy(app: Flask) -> RateLimitPolicy | None:
    """The policy :class:`RateLimits` installed on ``app``, if limits are on."""
    policy: RateLimitPolicy | None = app.extensions.get(EXTENSION_KEY)
    return policy


def replace_limits(app: Flask, settings: Settings) -> bool:
    """Count by ``settings``' limits from the next request on (a reload); ``False`` when ``app`` has none.

    An app built without any limit installed no limiter, so turning limits on needs a new app;
    the counters, their storage and the fallback stay those the limiter was built with.
    """
    policy = rate_limit_policy(app)
    if policy is None:
        return not _any_configured(settings)
    policy.replace_settings(settings)
    return True


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


def _storage(uri: str) -> Storage:
    """The counters ``rate_limit_storage`` names: this worker's memory, or a shared store ``limits`` opens."""
    scheme = _scheme(uri)
    if scheme in _LOCAL_SCHEMES:
        return MemoryCounters()
    options: dict[str, float | str | bool] = {"wrap_exceptions": True}
    if scheme.startswith("redis"):
        options.update(socket_connect_timeout=_REDIS_TIMEOUT_S, socket_timeout=_REDIS_TIMEOUT_S)
    try:
        storage = storage_from_string(uri, **options)
    except (ConfigurationError, ValueError) as exc:
        raise ConfigError(_storage_problem(uri, exc)) from exc
    if not isinstance(storage, Storage):
        # An ``async+`` scheme: its storage answers coroutines, which a WSGI server never awaits.
        raise ConfigError(_storage_problem(uri, ValueError("asynchronous storage")))
    return storage


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


def _too_many(limit: RateLimitItem, model: str | None, retry_after: int) -> TooManyRequests:
    on = f" on model {model!r}" if model is not None else ""
    wait = max(1, retry_after)
    message = (
        f"too many requests{on}: the limit is {limit.amount} per "
        f"{_describe_window(limit.get_expiry())}; retry in {wait} s"
    )
    return TooManyRequests(message, headers={"Retry-After": str(wait)})


def _describe_window(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"
    return "second" if seconds == 1 else f"{seconds} seconds"


def _check() -> None:
    """Flask's ``before_request`` hook: count the request, refuse it over the limit.

    URLs that match no route are never limited, so a scan of made-up paths costs no counter.
    """
    rule = request.url_rule
    if rule is None:
        return
    policy: RateLimitPolicy = current_app.extensions[EXTENSION_KEY]
    decision = policy.decide(
        declared_access(rule),
        request.method,
        request.view_args or {},
        request.headers,
        key_name=g.get("api_key_name"),
        address=request.remote_addr,
    )
    if decision is None:
        return
    setattr(g, _G_DECISION, decision)
    if decision.refusal is not None:
        raise decision.refusal


def _add_headers(response: Response) -> Response:
    decision: Decision | None = g.get(_G_DECISION)
    if decision is not None:
        decision.add_headers(response.headers)
    return response
