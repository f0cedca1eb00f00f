"""The version policy in force for each model: a pin made through the API over what its settings say.

:meth:`~flaskserve.lifecycle.reloader.Reloader.pin` serves one version alone,
over whatever the model's version policy (:mod:`flaskserve.models.policy`) says;
unpinning gives the policy back. Such a pin lasts until it is unpinned, the model
is unloaded, or the model's settings file changes: the file is the lasting
statement of what serves (``flaskserve pin`` writes its pin there,
:mod:`~flaskserve.lifecycle.pinning`), so an operator's edit of it wins over an
earlier API pin. That is why a pin remembers the digest of the settings file as
it was when the pin was made.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from flaskserve.models import policy
from flaskserve.models.loading import settings_for
from flaskserve.models.repository import MODEL_SETTINGS_FILE, ModelSource
from flaskserve.settings import Settings, VersionPolicy

__all__ = ["ApiPin", "Pins"]

log = logging.getLogger("flaskserve.models")

#: A pin made through the API: (version, digest of the model's settings file when it was made).
ApiPin = tuple[str, str]


class Pins:
    """The pins made through the API, per model, in this process."""

    def __init__(self, settings: Settings, root: Path | None) -> None:
        self._settings = settings
        self._root = root
        self._pins: dict[str, ApiPin] = {}

    def get(self, name: str) -> ApiPin | None:
        return self._pins.get(name)

    def make(self, name: str, version: str) -> ApiPin:
        """A pin of ``version``, tied to the model's settings file as it is now; :meth:`put` enforces it."""
        return version, self._settings_digest(name)

    def put(self, name: str, pin: ApiPin | None) -> None:
        """Put ``pin`` in force (``None``: no pin), as an action or a journal entry says."""
        if pin is None:
            self._pins.pop(name, None)
        else:
            self._pins[name] = pin

    def drop(self, name: str) -> ApiPin | None:
        """Lift the pin of ``name``; returns it (to :meth:`put` back if what follows fails)."""
        return self._pins.pop(name, None)

    def policy(self, name: str, configured: VersionPolicy) -> VersionPolicy:
        """The policy in force: the API's pin over the one its settings configure."""
        pinned = self._pins.get(name)
        return VersionPolicy(pin=pinned[0]) if pinned is not None else configured

    def select(self, sources: list[ModelSource]) -> list[ModelSource]:
        """The sources (of one model) that the policy in force serves."""
        if not sources:
            return sources
        rule = self.policy(sources[0].name, settings_for(sources[0], self._settings).versions)
        chosen = set(policy.select((s.version for s in sources), rule))
        return [s for s in sources if s.version in chosen]

    def lift_outdated(self, name: str) -> bool:
        """Lift the pin of ``name`` if its settings file changed since; ``True`` when lifted."""
        pinned = self._pins.get(name)
        if pinned is None or self._settings_digest(name) == pinned[1]:
            return False
        del self._pins[name]
        log.info(
            "the model's settings file changed: the pin made through the API is lifted",
            extra={"model": name, "version": pinned[0]},
        )
        return True

    def _settings_digest(self, name: str) -> str:
        """The digest of the model's settings file ("" without one): what an API pin lasts as long as."""
        if self._root is None:
            return ""
        try:
            return hashlib.sha256((self._root / name / MODEL_SETTINGS_FILE).read_bytes()).hexdigest()
        except OSError:
            return ""
