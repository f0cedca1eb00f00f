"""The versions each model serves in this process, and the one way they change: load, verify, swap.

Every path that changes what a model serves — a client's load or pin, a watched
folder, another worker's journaled action — goes through :class:`ServedVersions`,
so that each loads as start-up does (the same trust policy, settings, loaders and
warm-up), verifies a new version against the newest one served before
(:mod:`flaskserve.models.verification`), and swaps all of a model's versions into
the registry at once. The registry never holds a model half changed.

It also remembers what the registry cannot: the models the operator unloaded,
those loading now, the versions whose files failed (with the digest of those
files, so that they are not tried again until they change), and the pins made
through the API (:mod:`~flaskserve.lifecycle.reloader.pins`), which go when their
model goes. It knows nothing of the journal: callers decide *which* versions, in
which order with the other workers; this decides *how*.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flaskserve.errors import ModelLoadError, ModelNotFound
from flaskserve.lifecycle.reloader.pins import Pins
from flaskserve.models.fingerprint import DigestCache, version_folder
from flaskserve.models.loaders import LoaderTable
from flaskserve.models.loading import LoadObserver, load_model, repository_root, settings_for, trust_policy
from flaskserve.models.registry import ModelEntry, ModelRegistry, ModelState
from flaskserve.models.repository import ModelSource, scan, scan_model, version_key
from flaskserve.models.served import ServedModel
from flaskserve.models.verification import verify
from flaskserve.settings import ModelSettings, Settings

__all__ = ["Failures", "ServedVersions"]

#: version -> (digest of the files that failed, reason)
Failures = dict[str, tuple[str, str]]


class ServedVersions:
    """One registry's models as this process serves them, changed only through the methods below.

    ``observer`` counts the loads this process carries out for a client or a watch
    (as start-up loads are counted) and the failures verification finds; ``forget`` is
    called with a model's name once its versions changed, to drop what other parts
    hold for them (compiled routes, caches).
    """

    def __init__(
        self,
        settings: Settings,
        loaders: LoaderTable,
        registry: ModelRegistry,
        *,
        observer: LoadObserver | None,
        forget: Callable[[str], None] | None,
    ) -> None:
        self.settings = settings
        self.loaders = loaders
        self.registry = registry
        self.observer = observer
        self._forget = forget
        #: The repository folder, or ``None`` when the server serves a single model file.
        self.root = repository_root(settings)
        #: Models the operator unloaded: not "configured to be loaded", so readiness does not count them.
        self.unloaded: set[str] = set()
        #: Models being loaded now (the index shows them ``LOADING`` while the registry serves on).
        self.loading: set[str] = set()
        #: Versions whose files failed to load or verify, per model: not tried again until they change.
        self.failed: dict[str, Failures] = {}
        self.pins = Pins(settings, self.root)
        self.digests = DigestCache()
        #: The content digest of each served model object's files, by (name, version).
        self._served_digests: dict[tuple[str, str], tuple[ServedModel, str]] = {}

    # -- what there is ----------------------------------------------------------------

    def single_name(self) -> str | None:
        """The name of the model file served without a repository folder, if that is what is served."""
        path = self.settings.model_path
        if path is None:
            return None
        return self.settings.model_name or self.loaders.stem(path)

    def sources(self, name: str) -> list[ModelSource]:
        """Every version of ``name`` on disk; :class:`ModelNotFound` when there is none."""
        if self.root is None:
            single = self.single_name()
            if single is None or name != single:
                served = f"only '{single}' (its model file) can be loaded or unloaded" if single else ""
                raise ModelNotFound(
                    f"cannot load '{name}': this server has no repository folder"
                    + (f"; {served}" if served else "")
                )
            path: Path = self.settings.model_path  # type: ignore[assignment]
            return scan(path, self.loaders, single_name=self.settings.model_name)
        if not (self.root / name).is_dir():
            raise ModelNotFound(f"the model repository has no model '{name}'")
        sources = scan_model(self.root, name, self.loaders)
        if not sources:
            raise ModelNotFound(f"the model repository's folder '{name}' holds no model file")
        return sources

    def served(self, name: str) -> list[ServedModel]:
        return [e.model for e in self.registry.entries(name) if e.model is not None]

    def newest_served(self, name: str) -> ServedModel | None:
        served = self.served(name)
        return served[-1] if served else None

    def is_ready(self) -> bool:
        """Whether this replica serves what it is supposed to (the readiness policy, docs/operations.md).

        Not ready while a model is still loading at start-up, or when a model whose
        files failed has no version left to serve. A model the operator unloaded, or
        whose folder left the repository, is not supposed to serve: it does not count.
        """
        entries = self.registry.entries()
        if any(e.state is not ModelState.READY for e in entries):
            return False
        served = set(self.registry.names())
        return not any(failures and name not in served for name, failures in self.failed.items())

    # -- loading ----------------------------------------------------------------------

    def load(self, name: str, sources: list[ModelSource], observer: LoadObserver | None) -> list[ServedModel]:
        """Load ``sources`` as start-up does; the first failure raises :class:`ModelLoadError`.

        ``observer`` counts the loads (``None`` for loads repeated from the journal,
        which their first worker counted already).
        """
        trust = trust_policy(self.settings)
        self.loading.add(name)
        try:
            models = []
            for source in sources:
                try:
                    model = load_model(
                        source,
                        settings_for(source, self.settings),
                        self.loaders,
                        trust,
                        observer,
                        max_text_bytes=self.settings.limits.max_string_bytes,
                    )
                except ModelLoadError:
                    raise
                except Exception as exc:
                    # Loaders wrap their own failures; anything else is still this file's fault.
                    raise ModelLoadError(
                        f"model '{name}' version {source.version} could not be loaded: {type(exc).__name__}"
                    ) from exc
                models.append(model)
            return models
        finally:
            self.loading.discard(name)

    def verify(self, model: ServedModel, previous: ServedModel | None) -> None:
        """Check ``model`` against ``previous`` (the newest served before); a failure is counted, raised."""
        try:
            verify(model, previous)
        except ModelLoadError:
            if self.observer is not None:
                self.observer.model_load_failed(model.name, model.version)
            raise

    def load_verified(self, name: str, sources: list[ModelSource]) -> list[ServedModel]:
        """Load ``sources`` for a client and verify each against the newest version served now."""
        previous = self.newest_served(name)
        models = self.load(name, sources, self.observer)
        for model in models:
            self.verify(model, previous)
        return models

    def keep_or_load(self, name: str, sources: list[ModelSource]) -> list[ServedModel]:
        """The models to serve for ``sources``: the versions served already as they are, the others
        loaded and verified (a failure raises, and nothing changed)."""
        held = {m.version: m for m in self.served(name)}
        fresh = self.load_verified(name, [s for s in sources if s.version not in held])
        chosen = [held[s.version] for s in sources if s.version in held] + fresh
        return sorted(chosen, key=lambda m: version_key(m.version))

    def digest_of(self, model: ServedModel) -> str:
        """The content digest of a served model's version folder, computed once per model object."""
        key = (model.name, model.version)
        known = self._served_digests.get(key)
        if known is None or known[0] is not model:
            known = (model, self.digests.digest(version_folder(model.source)))
            self._served_digests[key] = known
        return known[1]

    def digests_of(self, models: list[ServedModel]) -> dict[str, str]:
        """version -> content digest: what a journal entry says ``models`` are."""
        return {m.version: self.digest_of(m) for m in models}

    def same(self, model: ServedModel, digest: str, model_settings: ModelSettings | None) -> bool:
        """Whether ``model`` is already what its files and settings (the version policy aside) make."""
        if self.digest_of(model) != digest:
            return False
        if model_settings is None:
            return True
        return model.settings.model_dump(exclude={"versions"}) == model_settings.model_dump(
            exclude={"versions"}
        )

    # -- changing what serves ---------------------------------------------------------

    def swap(self, name: str, models: list[ServedModel]) -> None:
        """Serve ``models`` (all of the model's versions), in place of what it served, at once."""
        entries = [ModelEntry(m.name, m.version, ModelState.READY, model=m) for m in models]
        self.registry.replace_model(name, entries)
        self.unloaded.discard(name)
        if self._forget is not None:
            self._forget(name)

    def remove(self, name: str, *, by_operator: bool = True) -> None:
        """Serve no version of ``name``; ``by_operator`` when unloaded (not when its folder left)."""
        self.registry.replace_model(name, [])
        self.failed.pop(name, None)
        self.pins.drop(name)
        if by_operator:
            self.unloaded.add(name)
        if self._forget is not None:
            self._forget(name)
