"""The reloader: each repository action decides which versions serve, in the order all workers follow.

When the server runs several worker processes, each action goes through a
:class:`~flaskserve.lifecycle.journal.Journal` (:mod:`~flaskserve.lifecycle.reloader.replay`):
the process that acts also appends the action, and the others repeat it before
their next request (see :meth:`Reloader.before_request`). An action is journaled
after its work is done (the versions loaded) and before it takes effect (the
registry swapped), so an action the journal cannot record changes nothing.

With ``--watch``, :class:`~flaskserve.lifecycle.watcher.Watcher` calls
:meth:`Reloader.sync` for a model whose complete files changed
(:mod:`~flaskserve.lifecycle.reloader.sync`), and :meth:`Reloader.remove_missing`
for one whose folder left.

**Pins through the API.** :meth:`Reloader.pin` serves one version of a model
alone, over whatever its version policy says, and :meth:`Reloader.unpin` gives
the policy back (:mod:`~flaskserve.lifecycle.reloader.pins`). Such a pin is
journaled like a load: every entry of the model carries it while it lasts, so a
replay that applies only the last entry keeps it. The index shows each model's
policy in force and where it came from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flaskserve.errors import BadRequest, ModelNotFound, VersionNotFound, clip
from flaskserve.lifecycle.journal import Journal
from flaskserve.lifecycle.reloader.index import IndexRow, index
from flaskserve.lifecycle.reloader.replay import Replay
from flaskserve.lifecycle.reloader.sync import choose
from flaskserve.lifecycle.reloader.versions import ServedVersions
from flaskserve.models import policy
from flaskserve.models.fingerprint import DigestCache
from flaskserve.models.loaders import LoaderTable
from flaskserve.models.loading import LoadObserver, settings_for
from flaskserve.models.registry import ModelEntry, ModelRegistry
from flaskserve.models.repository import scan_model, valid_model_name, valid_version
from flaskserve.models.served import ServedModel
from flaskserve.settings import Settings, VersionPolicy

__all__ = ["Reloader"]

log = logging.getLogger("flaskserve.models")


class Reloader:
    """Loads and unloads the models of one registry at run time.

    ``observer`` counts the loads this process carries out for a client (as
    start-up loads are counted); loads repeated from the journal are not counted
    again, so a load counts once however many workers repeat it. ``forget`` is
    called with a model's name once its versions left the registry, to drop what
    other parts hold for them (compiled routes, caches).

    Each action below decides which versions serve, then, in the workers' one
    order (:class:`~flaskserve.lifecycle.reloader.replay.Replay`), has
    :class:`~flaskserve.lifecycle.reloader.versions.ServedVersions` load and
    verify them, journals the outcome and swaps it in.
    """

    def __init__(
        self,
        settings: Settings,
        loaders: LoaderTable,
        registry: ModelRegistry,
        *,
        observer: LoadObserver | None = None,
        journal: Journal | None = None,
        forget: Callable[[str], None] | None = None,
    ) -> None:
        self._versions = ServedVersions(settings, loaders, registry, observer=observer, forget=forget)
        self._pins = self._versions.pins
        self._replay = Replay(self._versions, journal)

    @property
    def journal(self) -> Journal | None:
        return self._replay.journal

    @property
    def digests(self) -> DigestCache:
        """The content digests of version folders, shared with the watcher so that each is read once."""
        return self._versions.digests

    def index(self, *, ready_only: bool = False) -> list[IndexRow]:
        """Every served version, plus every version on disk that is not served (``UNAVAILABLE``)."""
        return index(self._versions, ready_only=ready_only)

    def is_ready(self) -> bool:
        """Whether this replica serves what it is supposed to (:meth:`ServedVersions.is_ready`)."""
        return self._versions.is_ready()

    # -- actions a client asks for --------------------------------------------------

    def load(self, name: str) -> list[ServedModel]:
        """(Re)load every version of ``name`` and serve them, or raise and change nothing.

        Raises :class:`ModelNotFound` when there is nothing of that name to load and
        :class:`ModelLoadError` (or :class:`UntrustedModel`) when a version fails, and
        :class:`JournalUnavailable` when the action cannot be journaled.
        """
        _check_name(name)
        versions = self._versions
        with self._replay.ordered() as append:
            models = versions.load_verified(name, self._pins.select(versions.sources(name)))
            append("load", name, versions.digests_of(models), pin=self._pins.get(name))
            versions.swap(name, models)
            versions.failed.pop(name, None)
        return models

    def pin(self, name: str, version: str | None = None) -> list[ServedModel]:
        """Serve version ``version`` of ``name`` alone, over its version policy, until :meth:`unpin`.

        Without ``version``, the version that answers unversioned requests now (the
        newest served, or the newest a load would serve) is pinned. Raises
        :class:`VersionNotFound` when the model's folder has no such version, and what
        :meth:`load` raises when the version fails to load or verify (the versions
        served before keep serving, and nothing is pinned).
        """
        _check_name(name)
        if version is not None and not valid_version(version):
            raise BadRequest(f"'{clip(version)}' is not a version: give its number, e.g. 3")
        versions = self._versions
        with self._replay.ordered() as append:
            if version is None:
                version = self._answering_version(name)
            version = str(int(version))
            sources = [s for s in versions.sources(name) if s.version == version]
            if not sources:
                on_disk = ", ".join(s.version for s in versions.sources(name))
                raise VersionNotFound(
                    f"model '{name}' has no version {version} to pin; its versions: {on_disk}"
                )
            models = versions.keep_or_load(name, sources)
            pinned = self._pins.make(name, version)
            append("load", name, versions.digests_of(models), versions.failed.get(name), pin=pinned)
            self._pins.put(name, pinned)
            versions.swap(name, models)
        log.info("model pinned through the repository API", extra={"model": name, "version": version})
        return models

    def unpin(self, name: str) -> list[ServedModel]:
        """Lift the API's pin of ``name``: its version policy chooses again. Nothing pinned: nothing changes.

        A pin written in the model's settings file is not the API's to lift (``flaskserve unpin``).
        """
        _check_name(name)
        versions = self._versions
        with self._replay.ordered() as append:
            sources = versions.sources(name)  # a model the repository lacks is 404, pinned or not
            lifted = self._pins.drop(name)
            if lifted is None:
                return versions.served(name)
            try:
                # A policy that names no version on disk leaves the pinned version serving, as a watch does.
                chosen = self._pins.select(sources)
                models = versions.keep_or_load(name, chosen) if chosen else versions.served(name)
                append("load", name, versions.digests_of(models), versions.failed.get(name))
            except BaseException:
                self._pins.put(name, lifted)
                raise
            versions.swap(name, models)
        log.info("model unpinned through the repository API", extra={"model": name})
        return models

    def unload(self, name: str) -> list[ModelEntry]:
        """Stop serving every version of ``name``; returns the entries that left the registry."""
        _check_name(name)
        registry = self._versions.registry
        with self._replay.ordered() as append:
            removed = registry.entries(name)
            if not removed:
                raise ModelNotFound(
                    f"model '{name}' is not loaded, so it cannot be unloaded; "
                    f"loaded models: {', '.join(registry.names()) or 'none'}"
                )
            append("unload", name)
            self._versions.remove(name)
        return removed

    def _answering_version(self, name: str) -> str:
        """The version unversioned requests get: the newest served, else the newest a load would serve."""
        newest = self._versions.newest_served(name)
        if newest is not None:
            return newest.version
        chosen = self._pins.select(self._versions.sources(name))
        if not chosen:
            raise VersionNotFound(f"model '{name}': its version policy serves no version; name one to pin")
        return chosen[-1].version

    # -- other processes' actions ---------------------------------------------------

    def before_request(self) -> None:
        """Repeat the actions other workers journaled since this one last looked; a memory read if none.

        A request that finds work waits until it is done, so no request that started
        after an action was answered runs on the state from before it.
        """
        self._replay.before_request()

    def catch_up(self) -> None:
        """Repeat the actions other workers journaled since this one last looked."""
        self._replay.catch_up()

    # -- what the watcher saw --------------------------------------------------------

    def sync(self, name: str, complete: dict[str, str], pending: set[str]) -> bool:
        """Serve what the model's folder holds now; ``True`` when something changed.

        ``complete`` maps each version whose files stopped changing to their content
        digest; ``pending`` names the versions still being written, which keep what
        they serve (if anything) and are not loaded yet. A model the operator unloaded
        through the API stays unloaded until the operator loads it again.
        """
        versions = self._versions
        with self._replay.ordered() as append:
            if name in versions.unloaded or versions.root is None:
                return False
            sources = {s.version: s for s in scan_model(versions.root, name, versions.loaders)}
            model_settings = (
                settings_for(next(iter(sources.values())), versions.settings) if sources else None
            )
            lifted = self._pins.lift_outdated(name)
            wanted = policy.select(
                (v for v in sources if v in complete or v in pending),
                self._pins.policy(name, model_settings.versions if model_settings else VersionPolicy()),
            )
            choice = choose(versions, name, sources, model_settings, wanted, complete)
            if choice.unchanged and not lifted:
                return False
            append("load", name, versions.digests_of(choice.models), choice.failed, self._pins.get(name))
            versions.swap(name, choice.models)
            versions.failed[name] = choice.failed
            log.info(
                "model versions in service changed",
                extra={
                    "model": name,
                    "versions": [m.version for m in choice.models],
                    "failed": sorted(choice.failed),
                },
            )
            return True

    def served_names(self) -> set[str]:
        """Models served, or whose files failed: those a watcher retires when their folder goes."""
        return set(self._versions.registry.names()) | set(self._versions.failed)

    def remove_missing(self, name: str) -> None:
        """The model's folder left the repository: stop serving it (not an operator's unload)."""
        versions = self._versions
        with self._replay.ordered() as append:
            if not versions.registry.entries(name) and name not in versions.failed:
                return
            append("remove", name)
            versions.remove(name, by_operator=False)
            log.info("model left the repository; no longer served", extra={"model": name})


def _check_name(name: str) -> None:
    # Before any path is built from it: no separators, no '..', no control characters.
    if not valid_model_name(name):
        raise BadRequest(
            f"'{clip(name)}' is not a valid model name: use letters, digits, '-', '_' and '.', "
            "starting with a letter or digit, at most 64 characters"
        )
