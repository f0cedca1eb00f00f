"""One order for every worker's actions: the journal's lock around an action, and the replay of others'.

When the server runs several worker processes, each action goes through the
:class:`~flaskserve.lifecycle.journal.Journal`: the process that acts appends
the action, and the others repeat it before their next request. Without a journal
(an app built in a test, or under ``flask run``) the actions are local to the one
process, and :meth:`Replay.ordered` takes only this process's lock.

An action is journaled after its work is done (the versions loaded) and before
it takes effect (the registry swapped): when the journal cannot be written (a
read-only or full run directory), the action fails with
:class:`~flaskserve.errors.JournalUnavailable` and changes nothing, here or in
any sibling. A journal that cannot be read leaves a worker on the models it has,
and serving goes on; so does an action that cannot be repeated here (logged).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flaskserve.errors import ModelLoadError, ModelNotFound
from flaskserve.lifecycle.journal import Journal, JournalEntry
from flaskserve.lifecycle.reloader.versions import ServedVersions
from flaskserve.models.repository import version_key

__all__ = ["Append", "Replay"]

log = logging.getLogger("flaskserve.models")

#: Records an action (the arguments of :meth:`JournalEntry.of`) in the order every worker follows.
Append = Callable[..., JournalEntry]


class Replay:
    """Orders this process's actions with the other workers', and repeats theirs on ``versions``."""

    def __init__(self, versions: ServedVersions, journal: Journal | None) -> None:
        self._versions = versions
        self.journal = journal
        # Reentrant: an action catches up with the journal (and so applies entries) under it.
        self._lock = threading.RLock()
        #: The journal could not be read when last tried (logged once until it can be again).
        self._unreadable = False

    @contextmanager
    def ordered(self) -> Iterator[Append]:
        """Hold the lock and (after catching up) the journal's, and yield its append.

        Without a journal the append records nowhere: the action is this process's alone.
        """
        with self._lock:
            if self.journal is None:
                yield JournalEntry.of
                return
            with self.journal.exclusive(self._repeat) as append:
                yield append

    def before_request(self) -> None:
        """Repeat the actions other workers journaled since this one last looked; a memory read if none.

        A request that finds work waits until it is done, so no request that started
        after an action was answered runs on the state from before it.
        """
        journal = self.journal
        if journal is not None and journal.changed():
            self.catch_up()

    def catch_up(self) -> None:
        journal = self.journal
        if journal is None:
            return
        with self._lock:
            if not journal.changed():
                return
            try:
                journal.replay(self._repeat)
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

    def _repeat(self, entry: JournalEntry) -> None:
        """Repeat one journaled action; a failure is logged and leaves this worker as it was."""
        versions = self._versions
        try:
            if entry.action in ("unload", "remove"):
                versions.remove(entry.model, by_operator=entry.action == "unload")
                return
            versions.failed[entry.model] = dict(entry.failed)
            versions.pins.put(entry.model, entry.pin)
            held = {m.version: m for m in versions.served(entry.model)}
            sources = [s for s in versions.sources(entry.model) if s.version in entry.versions]
            missing = sorted(set(entry.versions) - {s.version for s in sources}, key=version_key)
            if missing:
                log.warning(
                    "model versions vanished before this worker could load them",
                    extra={"model": entry.model, "versions": missing, "journal_seq": entry.seq},
                )
            kept = [
                held[s.version]
                for s in sources
                if s.version in held and versions.digest_of(held[s.version]) == entry.versions[s.version]
            ]
            kept_versions = {m.version for m in kept}
            # Not counted: the worker that acted counted the load once for every worker.
            fresh = versions.load(entry.model, [s for s in sources if s.version not in kept_versions], None)
            for model in fresh:
                if versions.digest_of(model) != entry.versions.get(model.version):
                    log.warning(
                        "model files changed between workers' loads",
                        extra={"model": model.name, "version": model.version, "sha256": model.sha256},
                    )
            versions.swap(entry.model, sorted(kept + fresh, key=lambda m: version_key(m.version)))
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
