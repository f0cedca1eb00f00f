"""Loading and unloading models while the server runs (the Open Inference Protocol's model repository).

A load rescans one model's folder and loads every version exactly as start-up
does — the same trust policy, settings files, loaders and warm-up — and only
once every version has loaded does it swap them all into the registry at once.
A failure leaves the registry as it was, so the versions served before keep
serving. An unload takes all of a model's versions out of the registry; they are
then no longer "configured to be loaded", so readiness does not count them.

When the server runs several worker processes, each action goes through a
:class:`~flaskserve.lifecycle.journal.Journal`: the process that acts also appends
the action, and the others repeat it before their next request (see
:meth:`Reloader.before_request`). Without a journal (an app built in a test, or
under ``flask run``) the actions are local to the one process.

An action is journaled after its work is done (the versions loaded) and before
it takes effect (the registry swapped): when the journal cannot be written (a
read-only or full run directory), the action fails with
:class:`~flaskserve.errors.JournalUnavailable` and changes nothing, here or in
any sibling. A journal that cannot be read leaves a worker on the models it has,
and serving goes on.

With ``--watch``, :class:`~flaskserve.lifecycle.watcher.Watcher` calls :meth:`Reloader.sync`
for a model whose complete files changed: only the versions whose files changed
are loaded and verified (:mod:`flaskserve.models.verification`); a version that
fails never serves, the versions served before keep serving, and the failure is
remembered with the digest of the files that failed, shown in the index, and not
tried again until those files change. Every action respects the model's version
policy (:mod:`flaskserve.models.policy`).

**Pins through the API.** :meth:`Reloader.pin` serves one version of a model
alone, over whatever its version policy says, and :meth:`Reloader.unpin` gives
the policy back. Such a pin is journaled like a load (every entry of the model
carries it while it lasts, so a replay that applies only the last entry keeps
it), and it lasts until it is unpinned, the model is unloaded, or the model's
settings file changes: the file is the lasting statement of what serves
(``flaskserve pin`` writes its pin there), so an operator's edit of it wins over
an earlier API pin. The index shows each model's policy in force and where it
came from.

A model being loaded is shown as ``LOADING`` in the index, while the registry
keeps serving what it had: a registry entry in that state would make readiness
fail for as long as the load takes, and take a busy server out of rotation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flaskserve.errors import BadRequest, ModelLoadError, ModelNotFound, VersionNotFound, clip
from flaskserve.lifecycle.journal import Action, Journal, JournalEntry
from flaskserve.models import policy
from flaskserve.models.fingerprint import DigestCache, version_folder
from flaskserve.models.loaders import LoaderTable
from flaskserve.models.loading import (
    LoadObserver,
    load_model,
    repository_root,
    settings_for,
    trust_policy,
)
from flaskserve.models.registry import ModelEntry, ModelRegistry, ModelState
from flaskserve.models.repository import (
    MODEL_SETTINGS_FILE,
    ModelSource,
    scan,
    scan_model,
    valid_model_name,
    valid_version,
    version_key,
)
from flaskserve.models.served import ServedModel
from flaskserve.models.verification import verify
from flaskserve.settings import ModelSettings, Settings, VersionPolicy

__all__ = ["NOT_LOADED", "UNLOADED", "IndexRow", "Reloader"]

log = logging.getLogger("flaskserve.models")

#: Index reasons of models on disk that are not served.
NOT_LOADED = "not loaded"
UNLOADED = "unloaded"
FAILED = "failed"

#: version -> (digest of the files that failed, reason)
Failures = dict[str, tuple[str, str]]
#: A pin made through the API: (version, digest of the model's settings file when it was made).
ApiPin = tuple[str, str]

#: Where a model's version policy in force comes from, as the index names it.
POLICY_DEFAULT = "default"
POLICY_SETTINGS = "settings"
POLICY_API = "api"

_Append = Callable[..., JournalEntry]


@dataclass(frozen=True)
class IndexRow:
    """One line of the repository index; ``version`` is ``None`` when a folder's versions are unreadable."""

    name: str
    version: str | None
    state: ModelState
    reason: str = ""
    #: The model's version policy in force (``all``, ``latest 2``, ``pinned 3``) and where it comes
    #: from: :data:`POLICY_DEFAULT`, :data:`POLICY_SETTINGS` (its settings file or the config's
    #: ``[models.NAME]``) or :data:`POLICY_API`; empty when its settings cannot be read.
    policy: str = ""
    policy_source: str = ""


class Reloader:
    """Loads and unloads the models of one registry at run time.

    ``observer`` counts the loads this process carries out for a client (as
    start-up loads are counted); loads repeated from the journal are not counted
    again, so a load counts once however many workers repeat it. ``forget`` is
    called with a model's name once its versions left the registry, to drop what
    other parts hold for them (compiled routes, caches).
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
        self._settings = settings
        self._loaders = loaders
        self._registry = registry
        self._observer = observer
        self._journal = journal
        self._forget = forget
        self._root = repository_root(settings)
        # Reentrant: an action catches up with the journal (and so applies entries) under it.
        self._lock = threading.RLock()
        self._unloaded: set[str] = set()
        self._loading: set[str] = set()
        #: The journal could not be read when last tried (logged once until it can be again).
        self._unreadable = False
        self.digests = DigestCache()
        #: The content digest of each served model object's files, by (name, version).
        self._served_digests: dict[tuple[str, str], tuple[ServedModel, str]] = {}
        #: Versions whose files failed to load or verify, per model: not tried again until they change.
        self._failed: dict[str, Failures] = {}
        #: Pins made through the API, per model.
        self._pins: dict[str, ApiPin] = {}

    @property
    def journal(self) -> Journal | None:
        return self._journal

    # -- the index ------------------------------------------------------------------

    def index(self, *, ready_only: bool = False) -> list[IndexRow]:
        """Every served version, plus every version on disk that is not served (``UNAVAILABLE``)."""
        rows = [
            IndexRow(e.name, e.version, e.state, self._served_reason(e)) for e in self._registry.entries()
        ]
        served = {(row.name, row.version) for row in rows}
        for name in sorted(self._loading - set(self._registry.names())):
            rows.append(IndexRow(name, None, ModelState.LOADING, "loading"))
        for name, version, problem in self._on_disk():
            if (name, version) in served or name in self._loading:
                continue
            reason = UNLOADED if name in self._unloaded else NOT_LOADED
            failure = self._failed.get(name, {}).get(version or "")
            if failure is not None:
                reason, problem = FAILED, failure[1]
            rows.append(
                IndexRow(name, version, ModelState.UNAVAILABLE, f"{reason}: {problem}" if problem else reason)
            )
        rows.sort(key=lambda r: (r.name, version_key(r.version) if r.version else -1))
        if ready_only:
            rows = [row for row in rows if row.state is ModelState.READY]
        policies = {name: self._policy_in_force(name) for name in {row.name for row in rows}}
        return [
            dataclasses.replace(row, policy=policies[row.name][0], policy_source=policies[row.name][1])
            for row in rows
        ]

    def _policy_in_force(self, name: str) -> tuple[str, str]:
        pinned = self._pins.get(name)
        if pinned is not None:
            return policy.describe(VersionPolicy(pin=pinned[0])), POLICY_API
        try:
            sources = self._sources(name)
            versions = settings_for(sources[0], self._settings).versions
        except (ModelLoadError, ModelNotFound, OSError):
            return "", ""
        return policy.describe(versions), POLICY_DEFAULT if versions == VersionPolicy() else POLICY_SETTINGS

    def _served_reason(self, entry: ModelEntry) -> str:
        failure = self._failed.get(entry.name, {}).get(entry.version)
        if failure is None:
            return entry.reason
        return f"serving its previous files; the new ones {FAILED}: {failure[1]}"

    def is_ready(self) -> bool:
        """Whether this replica serves what it is supposed to (the readiness policy, docs/operations.md).

        Not ready while a model is still loading at start-up, or when a model whose
        files failed has no version left to serve. A model the operator unloaded, or
        whose folder left the repository, is not supposed to serve: it does not count.
        """
        entries = self._registry.entries()
        if any(e.state is not ModelState.READY for e in entries):
            return False
        served = set(self._registry.names())
        return not any(failures and name not in served for name, failures in self._failed.items())

    def _on_disk(self) -> Iterator[tuple[str, str | None, str]]:
        """(name, version, problem) of each model version in the repository folder, or of the single file."""
        if self._root is None:
            name = self._single_name()
            if name is not None:
                yield name, "1", ""
            return
        try:
            folders = sorted(
                p.name for p in self._root.iterdir() if p.is_dir() and not p.name.startswith(".")
            )
        except OSError:
            return
        for name in folders:
            if not valid_model_name(name):
                continue
            try:
                sources = scan_model(self._root, name, self._loaders)
            except ModelLoadError as exc:
                yield name, None, exc.message
                continue
            for source in sources:
                yield name, source.version, ""

    # -- actions a client asks for --------------------------------------------------

    def load(self, name: str) -> list[ServedModel]:
        """(Re)load every version of ``name`` and serve them, or raise and change nothing.

        Raises :class:`ModelNotFound` when there is nothing of that name to load and
        :class:`ModelLoadError` (or :class:`UntrustedModel`) when a version fails, and
        :class:`JournalUnavailable` when the action cannot be journaled.
        """
        self._check_name(name)
        with self._lock, self._ordered() as append:
            sources = self._by_policy(self._sources(name))
            previous = self._newest_served(name)
            models = self._load_sources(name, sources, self._observer)
            for model in models:
                self._verify(model, previous)
            append("load", name, {m.version: self._digest_of(m) for m in models}, pin=self._pins.get(name))
            self._swap(name, models)
            self._failed.pop(name, None)
        return models

    def pin(self, name: str, version: str | None = None) -> list[ServedModel]:
        """Serve version ``version`` of ``name`` alone, over its version policy, until :meth:`unpin`.

        Without ``version``, the version that answers unversioned requests now (the
        newest served, or the newest a load would serve) is pinned. Raises
        :class:`VersionNotFound` when the model's folder has no such version, and what
        :meth:`load` raises when the version fails to load or verify (the versions
        served before keep serving, and nothing is pinned).
        """
        self._check_name(name)
        if version is not None and not valid_version(version):
            raise BadRequest(f"'{clip(version)}' is not a version: give its number, e.g. 3")
        with self._lock, self._ordered() as append:
            if version is None:
                version = self._answering_version(name)
            version = str(int(version))
            sources = [s for s in self._sources(name) if s.version == version]
            if not sources:
                on_disk = ", ".join(s.version for s in self._sources(name))
                raise VersionNotFound(
                    f"model '{name}' has no version {version} to pin; its versions: {on_disk}"
                )
            models = self._serve_sources(name, sources)
            pinned = (version, self._settings_digest(name))
            append(
                "load",
                name,
                {m.version: self._digest_of(m) for m in models},
                self._failed.get(name),
                pin=pinned,
            )
            self._pins[name] = pinned
            self._swap(name, models)
        log.info("model pinned through the repository API", extra={"model": name, "version": version})
        return models

    def unpin(self, name: str) -> list[ServedModel]:
        """Lift the API's pin of ``name``: its version policy chooses again. Nothing pinned: nothing changes.

        A pin written in the model's settings file is not the API's to lift (``flaskserve unpin``).
        """
        self._check_name(name)
        with self._lock, self._ordered() as append:
            sources = self._sources(name)  # a model the repository lacks is 404, pinned or not
            if name not in self._pins:
                return self._served(name)
            lifted = self._pins.pop(name)
            try:
                # A policy that names no version on disk leaves the pinned version serving, as a watch does.
                chosen = self._by_policy(sources)
                models = self._serve_sources(name, chosen) if chosen else self._served(name)
                append("load", name, {m.version: self._digest_of(m) for m in models}, self._failed.get(name))
            except BaseException:
                self._pins[name] = lifted
                raise
            self._swap(name, models)
        log.info("model unpinned through the repository API", extra={"model": name})
        return models

    def unload(self, name: str) -> list[ModelEntry]:
        """Stop serving every version of ``name``; returns the entries that left the registry."""
        self._check_name(name)
        with self._lock, self._ordered() as append:
            removed = self._registry.entries(name)
            if not removed:
                raise ModelNotFound(
                    f"model '{name}' is not loaded, so it cannot be unloaded; "
                    f"loaded models: {', '.join(self._registry.names()) or 'none'}"
                )
            append("unload", name)
            self._remove(name)
        return removed

    # -- other processes' actions ---------------------------------------------------

    def before_request(self) -> None:
        """Repeat the actions other workers journaled since this one last looked; a memory read if none.

        A request that finds work waits until it is done, so no request that started
        after an action was answered runs on the state from before it.
        """
        journal = self._journal
        if journal is not None and journal.changed():
            self.catch_up()

    def catch_up(self) -> None:
        journal = self._journal
        if journal is None:
            return
        with self._lock:
            if not journal.changed():
                return
            try:
                journal.replay(self._apply)
            except OSError as exc:
                # The request waiting on this is served with the models this worker has.
                if not self._unreadable:
                    log.error(
                        "cannot read the repository journal; this worker keeps its models until it can",
                        extra={"error": exc.strerror or type(exc).__name__},
                    )
                self._unreadable = True
            else:
                if self._unreadable:
                    log.info("the repository journal is readable again")
                self._unreadable = False

    def _apply(self, entry: JournalEntry) -> None:
        """Repeat one journaled action; a failure is logged and leaves this worker as it was."""
        try:
            if entry.action in ("unload", "remove"):
                self._remove(entry.model, by_operator=entry.action == "unload")
                return
            self._failed[entry.model] = dict(entry.failed)
            if entry.pin is None:
                self._pins.pop(entry.model, None)
            else:
                self._pins[entry.model] = entry.pin
            held = {m.version: m for m in self._served(entry.model)}
            sources = [s for s in self._sources(entry.model) if s.version in entry.versions]
            missing = sorted(set(entry.versions) - {s.version for s in sources}, key=version_key)
            if missing:
                log.warning(
                    "model versions vanished before this worker could load them",
                    extra={"model": entry.model, "versions": missing, "journal_seq": entry.seq},
                )
            kept = [
                held[s.version]
                for s in sources
                if s.version in held and self._digest_of(held[s.version]) == entry.versions[s.version]
            ]
            kept_versions = {m.version for m in kept}
            fresh = self._load_sources(
                entry.model, [s for s in sources if s.version not in kept_versions], None
            )
            for model in fresh:
                if self._digest_of(model) != entry.versions.get(model.version):
                    log.warning(
                        "model files changed between workers' loads",
                        extra={"model": model.name, "version": model.version, "sha256": model.sha256},
                    )
            self._swap(entry.model, sorted(kept + fresh, key=lambda m: version_key(m.version)))
        except Exception as exc:
            # A request is waiting on this: it must not fail, and the journal must move on.
            message = exc.message if isinstance(exc, ModelLoadError | ModelNotFound) else type(exc).__name__
            log.error(
                "could not repeat another worker's model action; this worker keeps its previous models",
                extra={
                    "model": entry.model,
                    "action": entry.action,
                    "journal_seq": entry.seq,
                    "error": message,
                },
            )

    # -- what the watcher saw --------------------------------------------------------

    def sync(self, name: str, complete: dict[str, str], pending: set[str]) -> bool:
        """Serve what the model's folder holds now; ``True`` when something changed.

        ``complete`` maps each version whose files stopped changing to their content
        digest; ``pending`` names the versions still being written, which keep what
        they serve (if anything) and are not loaded yet. A model the operator unloaded
        through the API stays unloaded until the operator loads it again.
        """
        with self._lock, self._ordered() as append:
            if name in self._unloaded or self._root is None:
                return False
            sources = {s.version: s for s in scan_model(self._root, name, self._loaders)}
            model_settings = settings_for(next(iter(sources.values())), self._settings) if sources else None
            lifted = self._lift_outdated_pin(name)
            wanted = policy.select(
                (v for v in sources if v in complete or v in pending),
                self._policy(name, model_settings.versions if model_settings else VersionPolicy()),
            )
            served = {m.version: m for m in self._served(name)}
            previous = self._newest_served(name)
            failed: Failures = {
                v: why for v, why in self._failed.get(name, {}).items() if complete.get(v) == why[0]
            }
            chosen: dict[str, ServedModel] = {}
            # A wanted version has nothing to serve: keep every version served before.
            short = not wanted
            if short and served:
                log.warning(
                    "the version policy names no version the folder holds; serving what was served",
                    extra={"model": name, "policy": policy.describe(model_settings.versions)}
                    if model_settings
                    else {"model": name},
                )
            for version in wanted:
                current = served.get(version)
                digest = complete.get(version)
                if digest is None or (version in failed and failed[version][0] == digest):
                    short = short or current is None or version in failed
                    if current is not None:
                        chosen[version] = current
                    continue
                if current is not None and self._same(current, digest, model_settings):
                    chosen[version] = current
                    continue
                try:
                    model = self._load_sources(name, [sources[version]], self._observer)[0]
                    if self._digest_of(model) != digest:
                        continue  # changed while it loaded: the watcher sees it again when it settles
                    self._verify(model, previous)
                except ModelLoadError as exc:
                    failed[version] = (digest, exc.message)
                    log.error(
                        "model version refused; the versions served before keep serving",
                        extra={"model": name, "version": version, "error": exc.message},
                    )
                    short = True
                    if current is not None:
                        chosen[version] = current
                    continue
                chosen[version] = model
            if short:
                for version, model in served.items():
                    chosen.setdefault(version, model)
            unchanged = {v: id(m) for v, m in chosen.items()} == {v: id(m) for v, m in served.items()}
            if unchanged and failed == self._failed.get(name, {}) and not lifted:
                return False
            models = sorted(chosen.values(), key=lambda m: version_key(m.version))
            append(
                "load", name, {m.version: self._digest_of(m) for m in models}, failed, self._pins.get(name)
            )
            self._swap(name, models)
            self._failed[name] = failed
            log.info(
                "model versions in service changed",
                extra={"model": name, "versions": [m.version for m in models], "failed": sorted(failed)},
            )
            return True

    def served_names(self) -> set[str]:
        """Models served, or whose files failed: those a watcher retires when their folder goes."""
        return set(self._registry.names()) | set(self._failed)

    def remove_missing(self, name: str) -> None:
        """The model's folder left the repository: stop serving it (not an operator's unload)."""
        with self._lock, self._ordered() as append:
            if not self._registry.entries(name) and name not in self._failed:
                return
            append("remove", name)
            self._remove(name, by_operator=False)
            log.info("model left the repository; no longer served", extra={"model": name})

    # -- the work -------------------------------------------------------------------

    @contextmanager
    def _ordered(self) -> Iterator[_Append]:
        """The journal's lock (after catching up) and its append, or a local no-op without a journal."""
        if self._journal is None:

            def local(
                action: Action,
                model: str,
                versions: dict[str, str] | None = None,
                failed: dict[str, tuple[str, str]] | None = None,
                pin: tuple[str, str] | None = None,
            ) -> JournalEntry:
                return JournalEntry(0, action, model, versions or {}, failed=failed or {}, pin=pin)

            yield local
            return
        with self._journal.exclusive(self._apply) as append:
            yield append

    def _check_name(self, name: str) -> None:
        # Before any path is built from it: no separators, no '..', no control characters.
        if not valid_model_name(name):
            raise BadRequest(
                f"'{clip(name)}' is not a valid model name: use letters, digits, '-', '_' and '.', "
                "starting with a letter or digit, at most 64 characters"
            )

    def _single_name(self) -> str | None:
        path = self._settings.model_path
        if path is None:
            return None
        return self._settings.model_name or self._loaders.stem(path)

    def _sources(self, name: str) -> list[ModelSource]:
        if self._root is None:
            single = self._single_name()
            if single is None or name != single:
                served = f"only '{single}' (its model file) can be loaded or unloaded" if single else ""
                raise ModelNotFound(
                    f"cannot load '{name}': this server has no repository folder"
                    + (f"; {served}" if served else "")
                )
            path: Path = self._settings.model_path  # type: ignore[assignment]
            return scan(path, self._loaders, single_name=self._settings.model_name)
        if not (self._root / name).is_dir():
            raise ModelNotFound(f"the model repository has no model '{name}'")
        sources = scan_model(self._root, name, self._loaders)
        if not sources:
            raise ModelNotFound(f"the model repository's folder '{name}' holds no model file")
        return sources

    def _load_sources(
        self, name: str, sources: list[ModelSource], observer: LoadObserver | None
    ) -> list[ServedModel]:
        trust = trust_policy(self._settings)
        self._loading.add(name)
        try:
            models = []
            for source in sources:
                try:
                    model = load_model(
                        source,
                        settings_for(source, self._settings),
                        self._loaders,
                        trust,
                        observer,
                        max_text_bytes=self._settings.limits.max_string_bytes,
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
            self._loading.discard(name)

    def _served(self, name: str) -> list[ServedModel]:
        return [e.model for e in self._registry.entries(name) if e.model is not None]

    def _newest_served(self, name: str) -> ServedModel | None:
        served = self._served(name)
        return served[-1] if served else None

    def _by_policy(self, sources: list[ModelSource]) -> list[ModelSource]:
        if not sources:
            return sources
        rule = self._policy(sources[0].name, settings_for(sources[0], self._settings).versions)
        chosen = set(policy.select((s.version for s in sources), rule))
        return [s for s in sources if s.version in chosen]

    def _answering_version(self, name: str) -> str:
        """The version unversioned requests get: the newest served, else the newest a load would serve."""
        newest = self._newest_served(name)
        if newest is not None:
            return newest.version
        chosen = self._by_policy(self._sources(name))
        if not chosen:
            raise VersionNotFound(f"model '{name}': its version policy serves no version; name one to pin")
        return chosen[-1].version

    def _policy(self, name: str, configured: VersionPolicy) -> VersionPolicy:
        """The policy in force: the API's pin over the one its settings configure."""
        pinned = self._pins.get(name)
        return VersionPolicy(pin=pinned[0]) if pinned is not None else configured

    def _settings_digest(self, name: str) -> str:
        """The digest of the model's settings file ("" without one): what an API pin lasts as long as."""
        if self._root is None:
            return ""
        try:
            return hashlib.sha256((self._root / name / MODEL_SETTINGS_FILE).read_bytes()).hexdigest()
        except OSError:
            return ""

    def _lift_outdated_pin(self, name: str) -> bool:
        """Lift the API's pin of ``name`` if its settings file changed since; ``True`` when lifted."""
        pinned = self._pins.get(name)
        if pinned is None or self._settings_digest(name) == pinned[1]:
            return False
        del self._pins[name]
        log.info(
            "the model's settings file changed: the pin made through the API is lifted",
            extra={"model": name, "version": pinned[0]},
        )
        return True

    def _serve_sources(self, name: str, sources: list[ModelSource]) -> list[ServedModel]:
        """The models to serve for ``sources``: the versions served already as they are, the others
        loaded and verified (a failure raises, and nothing changed)."""
        held = {m.version: m for m in self._served(name)}
        previous = self._newest_served(name)
        fresh = self._load_sources(name, [s for s in sources if s.version not in held], self._observer)
        for model in fresh:
            self._verify(model, previous)
        chosen = [held[s.version] for s in sources if s.version in held] + fresh
        return sorted(chosen, key=lambda m: version_key(m.version))

    def _verify(self, model: ServedModel, previous: ServedModel | None) -> None:
        try:
            verify(model, previous)
        except ModelLoadError:
            if self._observer is not None:
                self._observer.model_load_failed(model.name, model.version)
            raise

    def _digest_of(self, model: ServedModel) -> str:
        """The content digest of a served model's version folder, computed once per model object."""
        key = (model.name, model.version)
        known = self._served_digests.get(key)
        if known is None or known[0] is not model:
            known = (model, self.digests.digest(version_folder(model.source)))
            self._served_digests[key] = known
        return known[1]

    def _same(self, model: ServedModel, digest: str, model_settings: ModelSettings | None) -> bool:
        """Whether ``model`` is already what its files and settings (the version policy aside) make."""
        if self._digest_of(model) != digest:
            return False
        if model_settings is None:
            return True
        return model.settings.model_dump(exclude={"versions"}) == model_settings.model_dump(
            exclude={"versions"}
        )

    def _swap(self, name: str, models: list[ServedModel]) -> None:
        entries = [ModelEntry(m.name, m.version, ModelState.READY, model=m) for m in models]
        self._registry.replace_model(name, entries)
        self._unloaded.discard(name)
        if self._forget is not None:
            self._forget(name)

    def _remove(self, name: str, *, by_operator: bool = True) -> None:
        self._registry.replace_model(name, [])
        self._failed.pop(name, None)
        self._pins.pop(name, None)
        if by_operator:
            self._unloaded.add(name)
        if self._forget is not None:
            self._forget(name)
