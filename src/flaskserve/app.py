"""``create_app(settings)``: the one place where the parts are wired together.

Usable under any WSGI server (``gunicorn 'flaskserve.app:create_app()'`` reads
settings from the environment) and from ``flask --app flaskserve.app``.
Importing this module loads nothing; models load when the factory runs, or are
passed in already loaded (``flaskserve serve`` loads them before forking).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from flaskserve.api import docs, health, mlflow, repository, simple, v1, v2
from flaskserve.api.errors import register_error_handlers
from flaskserve.api.json_provider import OrjsonProvider
from flaskserve.api.metrics import METRICS_PART
from flaskserve.api.metrics import blueprint as metrics_blueprint
from flaskserve.inference.batcher import Occupancy
from flaskserve.inference.service import InferenceService
from flaskserve.models.journal import JOURNAL_FILE, Journal
from flaskserve.models.loaders import LoaderTable, default_loaders
from flaskserve.models.loading import load_registry
from flaskserve.models.registry import ModelRegistry
from flaskserve.models.reloading import Reloader
from flaskserve.observability.metrics import Metrics
from flaskserve.observability.multiprocess import directory_in_use
from flaskserve.observability.tracker import RequestTracker
from flaskserve.runtime import EXTENSION_KEY, Runtime
from flaskserve.security.auth import ApiKeyAuth
from flaskserve.security.cors import Cors
from flaskserve.security.exposure import check_exposure
from flaskserve.security.headers import SecurityHeaders
from flaskserve.security.keys import KeyStore, KeyStoreError
from flaskserve.security.ratelimit import RateLimits
from flaskserve.serving.occupancy import count_requests
from flaskserve.serving.rundir import run_directory_in_use
from flaskserve.settings import ConfigError, Settings, load_settings


class FlaskserveApp(Flask):
    """Flask, minus a per-hook coroutine check that no flaskserve view or hook needs.

    Flask asks ``inspect.iscoroutinefunction`` about every hook and view on every
    request, to support ``async def`` views; flaskserve has none, and the check
    is a measurable share of a small prediction's time.
    """

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        return func


def create_app(
    settings: Settings | None = None,
    *,
    registry: ModelRegistry | None = None,
    loaders: LoaderTable | None = None,
) -> Flask:
    settings = settings if settings is not None else load_settings()
    loaders = loaders if loaders is not None else default_loaders()
    # Keys first: a server that would be open to the network refuses before any model loads.
    try:
        keys = KeyStore.load(settings.keys_file)
    except KeyStoreError as exc:
        raise ConfigError(str(exc)) from exc
    check_exposure(settings.host, key_count=len(keys), insecure=settings.insecure)
    # Created before the models load, so that load times and failures are counted.
    metrics = Metrics(multiprocess_dir=directory_in_use())
    registry = registry if registry is not None else load_registry(settings, loaders, metrics)

    app = FlaskserveApp("flaskserve")
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.limits.max_body_bytes
    occupancy = Occupancy()
    service = InferenceService(
        max_rows=settings.limits.max_rows,
        observer=metrics,
        max_batch_size=settings.max_batch_size,
        max_batch_delay_ms=settings.max_batch_delay_ms,
        cache_size=settings.cache_size,
        cache_max_bytes=settings.cache_max_bytes,
        cache_ttl_s=settings.cache_ttl_s,
        occupancy=occupancy,
    )
    app.extensions[EXTENSION_KEY] = Runtime(
        settings=settings, registry=registry, service=service, loaders=loaders
    )

    app.extensions[EXTENSION_KEY].parts[METRICS_PART] = metrics
    RequestTracker().init_app(app, registry=registry, metrics=metrics)
    # Before auth, so that every later hook and view of a request sees the models other workers changed.
    run_dir = run_directory_in_use()
    reloader = Reloader(
        settings,
        loaders,
        registry,
        observer=metrics,
        journal=Journal(run_dir / JOURNAL_FILE) if run_dir is not None else None,
        forget=service.forget,
    )
    repository.init_app(app, reloader)

    register_error_handlers(app)
    # Batch leaders see how many requests are inside this process (see inference/batcher.py).
    app.wsgi_app = count_requests(app.wsgi_app, occupancy)  # type: ignore[method-assign,assignment]
    if settings.trusted_proxies:
        # Only the last N X-Forwarded-For entries were written by our own proxies; the rest is client text.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]
    # Auth, then rate limits: both run before any view reads a body, and limits count by key name.
    ApiKeyAuth().init_app(app, keys, default_model=lambda: registry.default_name)
    RateLimits().init_app(app, settings, registry)
    tls = settings.tls_certfile is not None or settings.tls_self_signed is not None
    SecurityHeaders().init_app(app, tls=tls)
    Cors().init_app(app, settings.cors_origins)
    app.register_blueprint(metrics_blueprint)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(simple.blueprint)
    app.register_blueprint(v2.blueprint)
    app.register_blueprint(v1.blueprint)
    app.register_blueprint(mlflow.blueprint)
    app.register_blueprint(docs.blueprint)
    return app
