"""The objects one app serves with, kept in ``app.extensions["flaskserve"]``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flaskserve.inference.batcher import Occupancy
from flaskserve.inference.service import InferenceService
from flaskserve.lifecycle.draining import DrainMarker
from flaskserve.lifecycle.reconfiguration import Reconfiguration
from flaskserve.lifecycle.reloader import Reloader
from flaskserve.lifecycle.watcher import Watcher
from flaskserve.models.loaders import LoaderTable
from flaskserve.models.registry import ModelRegistry
from flaskserve.observability.metrics import Metrics
from flaskserve.protocols.table import ProtocolTable
from flaskserve.settings import Settings

EXTENSION_KEY = "flaskserve"


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    registry: ModelRegistry
    service: InferenceService
    loaders: LoaderTable
    protocols: ProtocolTable
    metrics: Metrics
    #: Loads and unloads models while serving (the repository API), in step with sibling workers.
    reloader: Reloader
    #: Requests inside this process, whatever carried them (batch leaders read it).
    occupancy: Occupancy
    #: Follows the key file and (with ``watch``) the repository; the server starts it in each worker.
    watcher: Watcher
    #: Set by the master when told to stop with a drain delay: readiness then answers 503.
    drain: DrainMarker = field(default_factory=DrainMarker)
    #: The parts that take a change of the settings on ``HUP`` (``None``: the settings never change).
    reconfiguration: Reconfiguration | None = None

    def is_ready(self) -> bool:
        """Readiness (``/v2/health/ready``, ``/readyz``, ``/ping``): the models' policy, and not draining."""
        return self.reloader.is_ready() and not self.drain.draining


def get_runtime(app: Any) -> Runtime:
    runtime: Runtime = app.extensions[EXTENSION_KEY]
    return runtime
