"""The objects one app serves with, kept in ``app.extensions["flaskserve"]``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flaskserve.inference.service import InferenceService
from flaskserve.models.loaders import LoaderTable
from flaskserve.models.registry import ModelRegistry
from flaskserve.settings import Settings

EXTENSION_KEY = "flaskserve"


@dataclass
class Runtime:
    settings: Settings
    registry: ModelRegistry
    service: InferenceService
    loaders: LoaderTable
    #: Parts that later layers attach (metrics, auth, ...), by name.
    parts: dict[str, Any] = field(default_factory=dict)


def get_runtime(app: Any) -> Runtime:
    runtime: Runtime = app.extensions[EXTENSION_KEY]
    return runtime
