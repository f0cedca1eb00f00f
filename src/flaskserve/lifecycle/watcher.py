"""``--watch``: follow the repository folder and the key file while serving.

Every serving process runs one watcher thread, started after the fork (a thread
in gunicorn's or granian's master would not survive the fork, and one holding a
lock at fork time would leave it held in the children). Each interval:

- **the key file**, in every process: a changed file is read again, so a key
  revoked with ``flaskserve keys revoke`` is refused from the next interval on;
- **the repository**, in one process only, the one holding the watch lock in
  the run directory (``flock``; when its holder dies, another takes it over): each
  version folder whose files are complete — unchanged since the last look, or
  published atomically with :data:`~flaskserve.models.fingerprint.PUBLISHED_MARKER`
  — is compared by content digest with what is served, and a model whose complete
  versions or settings file changed is handed to
  :meth:`~flaskserve.lifecycle.reloader.Reloader.sync`, which loads, verifies,
  journals and swaps. The other workers follow through the journal before their
  next request, as they follow the repository API.

A file still being written is never loaded: its folder changes between looks,
so it waits. A settings file that another one was renamed over (a new inode where
a file was) is whole by construction, as ``flaskserve pin`` and most editors
write it, and is taken at once. A model whose folder left the repository stops being served.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from flaskserve.errors import FlaskserveError
from flaskserve.lifecycle.reloader import Reloader
from flaskserve.models.fingerprint import PUBLISHED_MARKER, Signature, folder_signature
from flaskserve.models.repository import MODEL_SETTINGS_FILE, valid_model_name, valid_version

__all__ = ["WATCH_LOCK_FILE", "Watcher"]

log = logging.getLogger("flaskserve.models")

#: The lock in the run directory that makes one worker the repository's watcher.
WATCH_LOCK_FILE = "repository.watch.lock"

#: What a look found of one model: complete versions' digests, versions in progress, the settings file.
_ModelView = tuple[frozenset[tuple[str, str]], frozenset[str], Signature]


class Watcher:
    """Looks at the key file and (with ``repository``) the model repository every ``interval_s``.

    ``refresh_keys`` reads the key file again if it changed (the key store's own
    ``refresh``; passed in, as this layer knows nothing of security).

    :meth:`look` is one look, the seam tests call; :meth:`start` runs looks in a
    thread of the calling process.
    """

    def __init__(
        self,
        reloader: Reloader,
        refresh_keys: Callable[[], object],
        *,
        repository: Path | None,
        interval_s: float,
        lock_path: Path | None = None,
    ) -> None:
        self._reloader = reloader
        self._refresh_keys = refresh_keys
        self._root = repository
        self._interval_s = interval_s
        self._lock_path = lock_path
        self._lock_fd: int | None = None
        self._lock_pid = 0
        self._thread_pid = 0
        self._stop = threading.Event()
        #: Each version folder's stat signature at the last look.
        self._seen: dict[Path, Signature] = {}
        #: Each model's view when it was last handed to the reloader.
        self._synced: dict[str, _ModelView] = {}
        #: Views whose sync failed, logged once each.
        self._reported: set[tuple[str, _ModelView]] = set()

    def start(self) -> None:
        """Watch from a daemon thread of this process (once per process; call it after the fork)."""
        if self._thread_pid == os.getpid():
            return
        self._thread_pid = os.getpid()
        self._stop = threading.Event()
        # The keys at once: a worker forked after a HUP or a crash must not serve with the master's old keys.
        self._refresh_keys()
        threading.Thread(target=self._run, name="flaskserve-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    @property
    def interval_s(self) -> float:
        """Seconds between two looks; a new value applies from the next wait on."""
        return self._interval_s

    @interval_s.setter
    def interval_s(self, seconds: float) -> None:
        self._interval_s = seconds

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.look()
            except Exception:
                # The watcher must outlive any one bad look; the next one starts afresh.
                log.exception("watching the repository failed; trying again next interval")

    def look(self) -> None:
        """One look at the key file and, if this process is the watcher, the repository."""
        self._refresh_keys()
        if self._root is None or not self._holds_lock():
            return
        on_disk = set()
        for folder in sorted(self._model_folders()):
            on_disk.add(folder.name)
            self._look_at(folder)
        for name in self._reloader.served_names() - on_disk:
            self._synced.pop(name, None)
            self._reloader.remove_missing(name)

    def _model_folders(self) -> list[Path]:
        assert self._root is not None
        try:
            return [
                p
                for p in self._root.iterdir()
                if p.is_dir() and not p.name.startswith(".") and valid_model_name(p.name)
            ]
        except OSError:
            return []

    def _look_at(self, folder: Path) -> None:
        settings_file = folder / MODEL_SETTINGS_FILE
        settings_view = self._file_view(settings_file)
        replaced = _renamed_over(self._seen.get(settings_file), settings_view)
        settings_settled = self._settled(settings_file, settings_view) or replaced
        complete: dict[str, str] = {}
        pending: set[str] = set()
        for version, version_dir in self._versions(folder):
            signature = folder_signature(version_dir)
            if signature and (
                (version_dir / PUBLISHED_MARKER).is_file() or self._settled(version_dir, signature)
            ):
                complete[version] = self._reloader.digests.digest(version_dir)
            else:
                self._settled(version_dir, signature)
                pending.add(version)
        if not settings_settled:
            return  # the settings file is being written: look again next time
        view: _ModelView = (frozenset(complete.items()), frozenset(pending), settings_view)
        if self._synced.get(folder.name) == view:
            return
        try:
            self._reloader.sync(folder.name, complete, pending)
        except FlaskserveError as exc:
            if (folder.name, view) not in self._reported:
                self._reported.add((folder.name, view))
                log.error(
                    "cannot serve the model's folder as it is; what was served keeps serving",
                    extra={"model": folder.name, "error": exc.message},
                )
            return
        self._synced[folder.name] = view

    def _versions(self, folder: Path) -> list[tuple[str, Path]]:
        try:
            dirs = [(str(int(p.name)), p) for p in folder.iterdir() if p.is_dir() and valid_version(p.name)]
        except OSError:
            return []
        # A model folder without version folders is version 1 (see models/repository.py).
        return dirs or [("1", folder)]

    def _settled(self, path: Path, signature: Signature) -> bool:
        """Whether ``path`` looks as it did at the last look (and remember how it looks now)."""
        before = self._seen.get(path)
        self._seen[path] = signature
        return before == signature

    @staticmethod
    def _file_view(path: Path) -> Signature:
        try:
            stat = path.stat()
        except OSError:
            return ()
        return ((path.name, stat.st_size, stat.st_mtime_ns, stat.st_ino),)

    def _holds_lock(self) -> bool:
        """Whether this process is the repository's watcher (always, without a run directory)."""
        if self._lock_path is None:
            return True
        if self._lock_fd is not None and self._lock_pid == os.getpid():
            return True
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd, self._lock_pid = fd, os.getpid()
        log.info("this worker watches the model repository", extra={"pid": self._lock_pid})
        return True


def _renamed_over(before: Signature | None, now: Signature) -> bool:
    """Whether a file seen at the last look was replaced by another renamed onto its name since."""
    if not before or not now:
        return False
    return before[0][3] != now[0][3]  # the inode
