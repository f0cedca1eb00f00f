"""The journal of model repository actions, shared by the worker processes of one server.

Under gunicorn every worker holds its own registry: a model loaded by the worker
that answered ``POST /v2/repository/models/iris/load`` is not loaded in its
siblings. So the worker that carries out an action also appends it to this
journal, one JSON line per action, and every worker applies the lines it has not
applied yet, in order, before it handles its next request. A worker that
gunicorn starts later (a replacement for one that died) is forked from the
master, which never applies anything, so it replays the journal from the first
line and ends up in the same state as its siblings. A model ends as its last
action leaves it (a load reloads every version from its files, an unload removes
them), so a replay applies only each model's last action: a replacement worker
loads each model at most once, however long the journal has grown.

Writers hold an exclusive ``flock`` on the file while they catch up, act and
append, so actions are totally ordered and a writer never acts on a stale
state. Readers take no lock: they read whole lines only. The one check made on
every request reads eight bytes of a small file mapped into every process's
memory (``MAP_SHARED``), where each writer stores the journal's size after its
append: a memory read, a few times cheaper than a ``stat`` of the journal. Each
``flock`` is taken on a descriptor opened for that write, because a descriptor
inherited across ``fork`` shares its lock with the parent and every sibling and
would exclude nobody.

A run directory that turns read-only or full under a running server makes an
append fail with :class:`~flaskserve.errors.JournalUnavailable` and leaves the
journal as it was: a line written in part is cut off again, so no worker ever
reads half an action. The shared mark's bytes are allocated when it is created,
so a store into it never meets a full disk (which would kill the process with
``SIGBUS``).

No Flask here: paths, bytes and plain values.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import logging
import mmap
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from flaskserve.errors import JournalUnavailable

__all__ = ["JOURNAL_FILE", "Action", "Journal", "JournalEntry"]

log = logging.getLogger("flaskserve.models")

#: The journal's file name inside the server's run directory.
JOURNAL_FILE = "repository.journal"

#: ``remove``: the model's folder left the repository (seen by ``--watch``); unlike ``unload``, it is
#: not the operator's choice, and the model is served again when its folder comes back.
Action = Literal["load", "unload", "remove"]


@dataclass(frozen=True)
class JournalEntry:
    """One action as every worker replays it.

    ``versions`` maps each version the acting worker serves after the action to the
    content digest of its files (:mod:`flaskserve.models.fingerprint`), so that the
    others serve the same versions (not whatever the folder holds by the time they
    replay), keep a version they already hold with that digest instead of loading it
    again, and can tell when a file changed in between.
    """

    seq: int
    action: Action
    model: str
    versions: Mapping[str, str] = field(default_factory=dict)
    pid: int = 0
    #: Versions that failed to load or verify: version -> (digest of the files that failed, reason).
    failed: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    #: The pin made through the repository API that is in force after the action, if any:
    #: (version, digest of the model's settings file when it was made). Carried by each of the
    #: model's entries while it lasts, since a replay applies only the model's last one.
    pin: tuple[str, str] | None = None

    @classmethod
    def of(
        cls,
        action: Action,
        model: str,
        versions: Mapping[str, str] | None = None,
        failed: Mapping[str, tuple[str, str]] | None = None,
        pin: tuple[str, str] | None = None,
    ) -> JournalEntry:
        """An entry not numbered yet (``seq`` and ``pid`` 0).

        What :meth:`Journal.exclusive`'s ``append`` numbers and writes, and what a
        process without a journal records nowhere: both take the same arguments.
        """
        return cls(0, action, model, dict(versions or {}), 0, dict(failed or {}), pin)

    def encode(self) -> bytes:
        document: dict[str, Any] = {
            "seq": self.seq,
            "action": self.action,
            "model": self.model,
            "versions": dict(self.versions),
            "pid": self.pid,
        }
        if self.failed:
            document["failed"] = {version: list(why) for version, why in self.failed.items()}
        if self.pin is not None:
            document["pin"] = list(self.pin)
        return orjson.dumps(document) + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> JournalEntry | None:
        """The entry a line holds, or ``None`` for a line no writer of ours could have written."""
        try:
            document: Any = orjson.loads(line)
            action = document["action"]
            if action not in ("load", "unload", "remove"):
                return None
            versions = {str(k): str(v) for k, v in dict(document.get("versions") or {}).items()}
            failed = {str(k): (str(v[0]), str(v[1])) for k, v in dict(document.get("failed") or {}).items()}
            pinned = document.get("pin")
            pin = (str(pinned[0]), str(pinned[1])) if pinned else None
            return cls(
                int(document["seq"]),
                action,
                str(document["model"]),
                versions,
                int(document["pid"]),
                failed,
                pin,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


class Journal:
    """An append-only file of :class:`JournalEntry` lines, and how far this process has applied it.

    The position is per process (each worker has its own copy after ``fork``) and
    moves on only by :meth:`replay` and :meth:`append`, which a caller serialises
    within its process.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.touch(mode=0o600, exist_ok=True)
            self._mark = _shared_mark(path.with_name(path.name + ".size"))
        except OSError as exc:
            raise JournalUnavailable(
                f"the run directory cannot hold the repository journal: {_reason(exc)}"
            ) from exc
        #: Bytes of whole lines this process has applied (or written itself).
        self._offset = 0
        #: The shared mark when this process last caught up: what :meth:`changed` compares to.
        self._applied_mark = bytes(_MARK_BYTES)
        self._last_seq = 0

    def changed(self) -> bool:
        """Whether a writer appended since this process last caught up: one read of shared memory.

        A read torn by a concurrent write only makes the caller look at the file once more.
        """
        return self._mark[:_MARK_BYTES] != self._applied_mark

    def replay(self, apply: Callable[[JournalEntry], None]) -> None:
        """Apply the whole lines appended since the last call, then move past them.

        Of each model's entries only the last is applied (see the module docstring),
        in the journal's order. The position moves only after ``apply`` returned for
        every entry, so a concurrent request that also saw the file change waits for
        the caller's lock and then finds nothing left to do: it never runs on the old
        state.
        """
        # Read before the file: if a writer appends meanwhile, the next check sees a newer mark.
        mark = self._mark[:_MARK_BYTES]
        with self.path.open("rb") as stream:
            stream.seek(self._offset)
            tail = stream.read()
        complete = tail.rfind(b"\n") + 1
        latest: dict[str, JournalEntry] = {}
        for line in tail[:complete].splitlines():
            entry = JournalEntry.decode(line)
            if entry is None:
                log.warning("skipping an unreadable repository journal line", extra={"bytes": len(line)})
                continue
            if entry.seq <= self._last_seq:
                continue
            latest.pop(entry.model, None)
            latest[entry.model] = entry
        for entry in latest.values():
            apply(entry)
            self._last_seq = entry.seq
        # A half-written last line is left for next time: its writer is still at it (and has not
        # answered its client yet), and moves the mark when the line is whole.
        self._offset += complete
        self._applied_mark = mark

    @contextmanager
    def exclusive(self, apply: Callable[[JournalEntry], None]) -> Iterator[Callable[..., JournalEntry]]:
        """Hold the journal's lock, catch up with ``apply``, and yield a function that appends one entry.

        Everything inside the block is ordered with every other process's actions.
        Call the yielded ``append(action, model, versions, failed, pin)`` (the arguments
        of :meth:`JournalEntry.of`) once the action is ready to take effect here and
        before it does: a failed action is not journaled, so no sibling repeats it, and
        an append that fails raises :class:`JournalUnavailable` before this process
        changed anything.
        """
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise JournalUnavailable(_unwritable(exc)) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                self.replay(apply)
            except OSError as exc:
                raise JournalUnavailable(_unwritable(exc)) from exc

            def append(*fields: Any, **named: Any) -> JournalEntry:
                # The fields are JournalEntry.of's; this process numbers and signs the entry.
                entry = dataclasses.replace(
                    JournalEntry.of(*fields, **named), seq=self._last_seq + 1, pid=os.getpid()
                )
                line = entry.encode()
                size = os.fstat(fd).st_size
                if size != self._offset:
                    # Bytes nobody finished (a writer killed mid-line): end them, so this line stays whole.
                    line = b"\n" + line
                _write_whole(fd, line, size)
                self._offset = size + len(line)
                self._applied_mark = self._offset.to_bytes(_MARK_BYTES, "little")
                self._mark[:_MARK_BYTES] = self._applied_mark
                self._last_seq = entry.seq
                return entry

            yield append
        finally:
            os.close(fd)  # closing the descriptor releases the lock


_MARK_BYTES = 8


def _write_whole(fd: int, line: bytes, size: int) -> None:
    """Append ``line`` to a journal of ``size`` bytes, all of it or none: a part written is cut off again.

    The caller holds the journal's lock, so no other writer has appended since ``size`` was read.
    """
    written = 0
    try:
        while written < len(line):
            count = os.write(fd, line[written:])
            if count == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written += count
    except OSError as exc:
        if written:
            try:
                os.ftruncate(fd, size)
            except OSError:
                # The next writer ends the stray bytes with a newline; readers skip that line.
                log.warning("could not remove a partly written repository journal line")
        raise JournalUnavailable(_unwritable(exc)) from exc


def _unwritable(exc: OSError) -> str:
    return (
        f"the server cannot record this change in its repository journal ({_reason(exc)}), so it was "
        "not made: the models served are unchanged; free or fix the run directory, then retry"
    )


def _reason(exc: OSError) -> str:
    """The system's words for ``exc`` (e.g. "No space left on device"), without the path it names."""
    return exc.strerror or type(exc).__name__


def _shared_mark(path: Path) -> mmap.mmap:
    """Eight bytes of ``path`` mapped shared: every process that maps it (or inherits it) sees each store."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if os.fstat(fd).st_size < _MARK_BYTES:
            # Extends with zeros and allocates them; a file another process already extended is left
            # as it is. Allocated now, the page can never fail a store on a full disk later.
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, _MARK_BYTES)
            else:  # pragma: no cover - macOS
                os.ftruncate(fd, _MARK_BYTES)
        return mmap.mmap(fd, _MARK_BYTES, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
