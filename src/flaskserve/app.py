"""``create_app(settings)``: the one place where the parts are wired together.

Usable under any WSGI server (``gunicorn 'flaskserve.app:create_app()'`` reads
settings from the environment) and from ``flask --app flaskserve.app``.
Importing this module loads nothing; models load when the factory runs, or are
passed in already loaded (``flaskserve serve`` loads them before forking).
"""

from __future__ import annotations

from flask import Flask

from flaskserve.api import health, simple
from flaskserve.api.errors import register_error_handlers
from flaskserve.api.json_provider import OrjsonProvider
from flaskserve.inference.service import InferenceService
from flaskserve.models.loaders import LoaderTable, default_loaders
from flaskserve.models.loading import load_registry
from flaskserve.models.registry import ModelRegistry
from flaskserve.runtime import EXTENSION_KEY, Runtime
from flaskserve.settings import Settings, load_settings


def create_app(
    settings: Settings | None = None,
    *,
    registry: ModelRegistry | None = None,
    loaders: LoaderTable | None = None,
) -> Flask:
    settings = settings if settings is not None else load_settings()
    loaders = loaders if loaders is not None else default_loaders()
    registry = registry if registry is not None else load_registry(settings, loaders)

    app = Flask("flaskserve")
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.limits.max_body_bytes
    service = InferenceService(max_rows=settings.limits.max_rows)
    app.extensions[EXTENSION_KEY] = Runtime(
        settings=settings, registry=registry, service=service, loaders=loaders
    )

    register_error_handlers(app)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(simple.blueprint)
    return app
