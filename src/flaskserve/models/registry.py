"""The models being served: names → versions → state, owned by one app.

Reads take no lock: writers build a new mapping and swap it in, so a request
never sees a half-updated table while a model is (re)loaded or unloaded.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from flaskserve.errors import ModelNotFound, ModelNotReady, VersionNotFound, clip
from flaskserve.models.repository import version_key
from flaskserve.models.served import ServedModel


class ModelState(str, enum.Enum):
    READY = "READY"
    LOADING = "LOADING"
    UNLOADING = "UNLOADING"
    UNAVAILABLE = "UNAVAILABLE"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    version: str
    state: ModelState
    reason: str = ""
    model: ServedModel | None = None


class ModelRegistry:
    def __init__(self, default_model: str | None = None) -> None:
        self._configured_default = default_model
        self._entries: Mapping[str, Mapping[str, ModelEntry]] = {}
        self._write_lock = threading.Lock()
        #: Bumped by every write, so readers can keep answers derived from the table until it changes.
        self.generation = 0

    # -- writing -----------------------------------------------------------------

    def add(self, model: ServedModel) -> None:
        self.set_entry(ModelEntry(model.name, model.version, ModelState.READY, model=model))

    def set_entry(self, entry: ModelEntry) -> None:
        with self._write_lock:
            table = {name: dict(versions) for name, versions in self._entries.items()}
            table.setdefault(entry.name, {})[entry.version] = entry
            self._entries = table
            self.generation += 1

    def replace_model(self, name: str, entries: list[ModelEntry]) -> None:
        """Swap every version of one model at once (a reload)."""
        with self._write_lock:
            table = {n: dict(v) for n, v in self._entries.items() if n != name}
            if entries:
                table[name] = {e.version: e for e in entries}
            self._entries = table
            self.generation += 1

    # -- reading -----------------------------------------------------------------

    @property
    def default_name(self) -> str | None:
        if self._configured_default is not None:
            return self._configured_default
        names = list(self._entries)
        return names[0] if len(names) == 1 else None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self, name: str | None = None) -> list[ModelEntry]:
        chosen = [name] if name is not None else sorted(self._entries)
        return [
            entry
            for n in chosen
            for entry in sorted(self._entries.get(n, {}).values(), key=lambda e: version_key(e.version))
        ]

    def models(self) -> list[ServedModel]:
        return [e.model for e in self.entries() if e.model is not None and e.state is ModelState.READY]

    def is_ready(self) -> bool:
        """True when every configured model version is loaded (and at least one is)."""
        entries = self.entries()
        return bool(entries) and all(e.state is ModelState.READY for e in entries)

    def entry(self, name: str, version: str | None = None) -> ModelEntry:
        versions = self._entries.get(name)
        if not versions:
            raise ModelNotFound(f"no model named '{clip(name)}'; served models: {self._listing()}")
        if version is None:
            ready = [e for e in versions.values() if e.state is ModelState.READY]
            pool = ready or list(versions.values())
            return max(pool, key=lambda e: version_key(e.version))
        found = versions.get(version)
        if found is None:
            raise VersionNotFound(
                f"model '{name}' has no version '{clip(version)}'; "
                f"versions: {', '.join(sorted(versions, key=_version_sort))}"
            )
        return found

    def resolve(self, name: str | None, version: str | None = None) -> ServedModel:
        """The model version a request names (latest ready version if none), or the error to answer."""
        if name is None:
            name = self.default_name
            if name is None:
                raise ModelNotFound(
                    "several models are served and none is the default; name one in the path, "
                    f"e.g. /models/NAME/predict (served models: {self._listing()})"
                )
        entry = self.entry(name, version)
        if entry.model is None or entry.state is not ModelState.READY:
            reason = f": {entry.reason}" if entry.reason else ""
            raise ModelNotReady(
                f"model '{name}' version {entry.version} is {entry.state.value.lower()}{reason}"
            )
        return entry.model

    def _listing(self) -> str:
        names = self.names()
        return ", ".join(names[:20]) + (", …" if len(names) > 20 else "") if names else "none"


def _version_sort(version: str) -> int:
    return version_key(version) if version.isdigit() else -1
