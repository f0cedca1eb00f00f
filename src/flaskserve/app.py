"""``create_app(settings)``: the one place where the parts are wired together.

Everything the app depends on is an argument: the settings, the models (or the
loaders that load them), the protocols, the metrics, the inference observer and
clock, and the run directory shared with sibling workers. Left out, each gets
its plain default (in-memory metrics, the system clock, no run directory), so a
test or ``flask --app flaskserve.app`` builds a complete single-process app, and
``flaskserve serve`` passes what it prepared for its workers. Nothing here reads
the environment but :func:`load_settings`, whose precedence is documented.
Importing this module loads nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import Map, Rule

from flaskserve.api import docs, health, lane, mlflow, playground, predict, repository, simple, v1, v2
from flaskserve.api import metrics as metrics_api
from flaskserve.api import monitoring as monitoring_api
from flaskserve.errors import BadRequest
from flaskserve.inference.batcher import Occupancy
from flaskserve.inference.clock import Clock
from flaskserve.inference.observer import InferenceObserver
from flaskserve.inference.service import InferenceService
from flaskserve.inference.shared_cache import shared_tier
from flaskserve.lifecycle.draining import DRAIN_FILE, DrainMarker
from flaskserve.lifecycle.journal import JOURNAL_FILE, Journal
from flaskserve.lifecycle.reconfiguration import Reconfiguration
from flaskserve.lifecycle.reloader import Reloader
from flaskserve.lifecycle.watcher import WATCH_LOCK_FILE, Watcher
from flaskserve.models.loaders import LoaderTable, default_loaders
from flaskserve.models.loading import load_registry, repository_root
from flaskserve.models.registry import ModelRegistry
from flaskserve.observability.logging import configure_logging
from flaskserve.observability.metrics import Metrics
from flaskserve.observability.monitoring import Monitoring
from flaskserve.observability.tracker import RequestTracker
from flaskserve.protocols.table import ProtocolTable, default_protocols
from flaskserve.runtime import EXTENSION_KEY, Runtime, get_runtime
from flaskserve.security.auth import ApiKeyAuth
from flaskserve.security.cors import Cors, replace_origins
from flaskserve.security.exposure import check_exposure
from flaskserve.security.headers import SecurityHeaders
from flaskserve.security.keys import KeyStore
from flaskserve.security.ratelimit import RateLimits, replace_limits
from flaskserve.serving.occupancy import count_requests
from flaskserve.settings import Settings, load_settings
from flaskserve.web import bodies
from flaskserve.web.errors import register_error_handlers
from flaskserve.web.json_provider import OrjsonProvider
from flaskserve.web.routing import DeclaredMap, DeclaredRule


class FlaskserveApp(Flask):
    """Flask whose rules carry their access and operation, minus a per-hook coroutine check.

    Every rule is a :class:`~flaskserve.web.routing.DeclaredRule`, in a map that knows
    the ``model`` converter (:class:`~flaskserve.web.routing.DeclaredMap`). Flask asks
    ``inspect.iscoroutinefunction`` about every hook and view on every request,
    to support ``async def`` views; flaskserve has none, and the check is a
    measurable share of a small prediction's time.
    """

    url_rule_class: type[Rule] = DeclaredRule
    url_map_class: type[Map] = DeclaredMap

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        return func


def _refuse_tunnels() -> None:
    """CONNECT asks for a tunnel, which only a proxy opens: a 400 whatever the target, not a 404."""
    if request.method == "CONNECT":
        raise BadRequest("CONNECT asks for a tunnel through a proxy; this server is not one")


def create_app(
    settings: Settings | None = None,
    *,
    registry: ModelRegistry | None = None,
    loaders: LoaderTable | None = None,
    protocols: ProtocolTable | None = None,
    metrics: Metrics | None = None,
    observer: InferenceObserver | None = None,
    clock: Clock | None = None,
    run_dir: Path | None = None,
) -> Flask:
    """Build the app.

    ``metrics`` defaults to in-memory metrics of this process (``flaskserve serve``
    passes metrics summed over workers); ``observer`` sees every model call and
    cache lookup and defaults to ``metrics``; ``run_dir`` is the directory sibling
    workers share (``None``: repository changes stay in this process).
    """
    settings = settings if settings is not None else load_settings()
    loaders = loaders if loaders is not None else default_loaders()
    protocols = protocols if protocols is not None else default_protocols()
    # Keys first: a server that would be open to the network refuses before any model loads.
    keys = KeyStore.load(settings.keys_file)
    check_exposure(settings.host, key_count=len(keys), insecure=settings.insecure)
    # Created before the models load, so that load times and failures are counted.
    metrics = metrics if metrics is not None else Metrics()
    registry = registry if registry is not None else load_registry(settings, loaders, metrics)

    occupancy = Occupancy()
    service = InferenceService(
        max_rows=settings.limits.max_rows,
        observer=observer if observer is not None else metrics,
        max_batch_size=settings.max_batch_size,
        max_batch_delay_ms=settings.max_batch_delay_ms,
        cache_size=settings.cache_size,
        cache_max_bytes=settings.cache_max_bytes,
        cache_ttl_s=settings.cache_ttl_s,
        shared_cache=shared_tier(
            settings.cache_storage,
            prefix=settings.cache_storage_key_prefix,
            ttl_s=settings.cache_storage_ttl_s,
            timeout_ms=settings.cache_storage_timeout_ms,
            max_entry_bytes=settings.cache_storage_max_entry_bytes,
            on_error=metrics.cache_storage_failed,
        ),
        clock=clock,
        occupancy=occupancy,
        predict_timeout_s=settings.predict_timeout_s,
        max_stuck=settings.max_stuck_predictions,
    )
    reloader = Reloader(
        settings,
        loaders,
        registry,
        observer=metrics,
        journal=Journal(run_dir / JOURNAL_FILE) if run_dir is not None else None,
        forget=service.forget,
    )

    app = FlaskserveApp("flaskserve", static_folder=None)
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.limits.max_body_bytes
    watcher = Watcher(
        reloader,
        keys.refresh,
        repository=repository_root(settings) if settings.watch else None,
        interval_s=settings.watch_interval_s,
        lock_path=run_dir / WATCH_LOCK_FILE if run_dir is not None else None,
    )
    app.extensions[EXTENSION_KEY] = Runtime(
        settings=settings,
        registry=registry,
        service=service,
        loaders=loaders,
        protocols=protocols,
        metrics=metrics,
        reloader=reloader,
        occupancy=occupancy,
        watcher=watcher,
        drain=DrainMarker(run_dir / DRAIN_FILE if run_dir is not None else None),
        reconfiguration=_reconfiguration(app, settings, service, registry, watcher),
    )
    RequestTracker().init_app(app, registry=registry, metrics=metrics)
    Monitoring().init_app(app, settings, registry, metrics)
    # Before auth, so that every later hook and view of a request sees the models other workers changed.
    repository.init_app(app, reloader)
    register_error_handlers(app)
    app.before_request(_refuse_tunnels)
    bodies.init_app(app)
    # Auth, then rate limits: both run before any view reads a body, and limits count by key name.
    ApiKeyAuth().init_app(app, keys, default_model=lambda: registry.default_name)
    RateLimits().init_app(app, settings, registry)
    tls = settings.tls_certfile is not None or settings.tls_self_signed is not None
    SecurityHeaders().init_app(app, tls=tls)
    Cors().init_app(app, settings.cors_origins)
    views = (metrics_api, monitoring_api, health, simple, v2, v1, mlflow, docs, playground)
    for module in views:
        app.register_blueprint(module.blueprint)
    predict.init_app(app, protocols)
    # In front of Flask, behind the middleware below: those must see every request, served by either.
    lane.install(app, protocols)
    # Batch leaders see how many requests are inside this process (see inference/batcher.py).
    app.wsgi_app = count_requests(app.wsgi_app, occupancy)  # type: ignore[method-assign,assignment]
    if settings.trusted_proxies:
        # Only the last N X-Forwarded-For entries were written by our own proxies; the rest is client text.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]
    return app


def reconfigure(app: Flask, read: Callable[[], Settings]) -> Settings:
    """Read the settings again with ``read`` and put in force what a running server can change (``HUP``).

    Returns the settings in force afterwards: the new values of the settings applied, the old
    ones of the rest (:mod:`flaskserve.lifecycle.reconfiguration`).
    """
    runtime = get_runtime(app)
    if runtime.reconfiguration is None:
        return runtime.settings
    settings = runtime.reconfiguration.reread(read)
    app.extensions[EXTENSION_KEY] = dataclasses.replace(runtime, settings=settings)
    return settings


def _reconfiguration(
    app: Flask, settings: Settings, service: InferenceService, registry: ModelRegistry, watcher: Watcher
) -> Reconfiguration:
    """The settings a running app takes on ``HUP``, each with the part that applies it.

    Every other setting needs a restart: the address, workers, threads and TLS are
    the master's sockets and processes; the request limits and client timeouts are
    built into the workers' connection handling; the keys file, trust settings and
    ``[models.NAME]`` sections decide what the models loaded before the fork are;
    the storage of counters and caches, the inference log's sink and the drift
    windows hold connections, queues and data of their own.
    """

    def retime(new: Settings) -> bool:
        service.predict_timeout_s = new.predict_timeout_s
        service.timed_calls.max_stuck = new.max_stuck_predictions
        for name in registry.names():
            service.forget(name)  # routes were composed with the old timeout
        return True

    def relog(new: Settings) -> bool:
        configure_logging(new.log_level, new.log_format, access_sample=new.log_access_sample)
        return True

    def rewatch(new: Settings) -> bool:
        watcher.interval_s = new.watch_interval_s
        return True

    reconfiguration = Reconfiguration(settings)
    reconfiguration.on_change("rate_limit", apply=lambda new: replace_limits(app, new))
    reconfiguration.on_change("cors_origins", apply=lambda new: replace_origins(app, new.cors_origins))
    reconfiguration.on_change("log_level", "log_format", "log_access_sample", apply=relog)
    reconfiguration.on_change("predict_timeout_s", "max_stuck_predictions", apply=retime)
    reconfiguration.on_change("watch_interval_s", apply=rewatch)
    return reconfiguration
