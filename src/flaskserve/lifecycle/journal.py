"""The journal of model repository actions, shared by the worker processes of one server.

Under gunicorn every worker holds its own registry: a model loaded by the worker
that answered ``POST /v2/repository/models/iris/load`` is not loaded in its
siblings. So the worker that carries out an action also appends it to this
journal, one JSON line per action, and every worker applies the lines it has not
applied yet, in order, before it handles its next request. A worker that
gunicorn starts later (a replacement for one that died) is forked from the
master, which never applies anything, so it replays the journal from the first
line and ends up in the same state as its siblings.

Writers hold an exclusive ``flock`` on the file while they catch up, act and
append, so actions are totally ordered and a writer never acts on a stale
state. Readers take no lock: they read whole lines only. The one check made on
every request reads eight bytes of a small file mapped into every process's
memory (``MAP_SHARED``), where each writer stores the journal's size after its
append: a memory read, a few times cheaper than a ``stat`` of the journal. Each
``flock`` is taken on a descriptor opened for that write, because a descriptor
inherited across ``fork`` shares its lock with the parent and every sibling and
would exclude nobody.

No Flask here: paths, bytes and plain values.
"""

from __future__ import annotations

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

__all__ = ["JOURNAL_FILE", "Action", "Journal", "JournalEntry"]

log = logging.getLogger("flaskserve.models")

#: The journal's file name inside the server's run directory.
JOURNAL_FILE = "repository.journal"

Action = Literal["load", "unload"]


@dataclass(frozen=True)
class JournalEntry:
    """One action as every worker replays it.

    ``versions`` maps each version the acting worker loaded to its file's SHA-256,
    so that the others load the same versions (not whatever the folder holds by the
    time they replay) and can tell when a file changed in between.
    """

    seq: int
    action: Action
    model: str
    versions: Mapping[str, str] = field(default_factory=dict)
    pid: int = 0

    def encode(self) -> bytes:
        document = {
            "seq": self.seq,
            "action": self.action,
            "model": self.model,
            "versions": dict(self.versions),
            "pid": self.pid,
        }
        return orjson.dumps(document) + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> JournalEntry | None:
        """The entry a line holds, or ``None`` for a line no writer of ours could have written."""
        try:
            document: Any = orjson.loads(line)
            action = document["action"]
            if action not in ("load", "unload"):
                return None
            versions = {str(k): str(v) for k, v in dict(document.get("versions") or {}).items()}
            return cls(int(document["seq"]), action, str(document["model"]), versions, int(document["pid"]))
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
        path.touch(mode=0o600, exist_ok=True)
        self._mark = _shared_mark(path.with_name(path.name + ".size"))
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
        """Apply every whole line appended since the last call, in order, then move past them.

        The position moves only after ``apply`` returned for every entry, so a
        concurrent request that also saw the file change waits for the caller's
        lock and then finds nothing left to do: it never runs on the old state.
        """
        # Read before the file: if a writer appends meanwhile, the next check sees a newer mark.
        mark = self._mark[:_MARK_BYTES]
        with self.path.open("rb") as stream:
            stream.seek(self._offset)
            tail = stream.read()
        complete = tail.rfind(b"\n") + 1
        for line in tail[:complete].splitlines():
            entry = JournalEntry.decode(line)
            if entry is None:
                log.warning("skipping an unreadable repository journal line", extra={"bytes": len(line)})
                continue
            if entry.seq <= self._last_seq:
                continue
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
        Call the yielded ``append(action, model, versions)`` only once the action
        has succeeded here: a failed action is not journaled, so no sibling repeats it.
        """
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.replay(apply)

            def append(action: Action, model: str, versions: Mapping[str, str] | None = None) -> JournalEntry:
                entry = JournalEntry(self._last_seq + 1, action, model, dict(versions or {}), os.getpid())
                line = entry.encode()
                size = os.fstat(fd).st_size
                if size != self._offset:
                    # Bytes nobody finished (a writer killed mid-line): end them, so this line stays whole.
                    line = b"\n" + line
                os.write(fd, line)
                self._offset = size + len(line)
                self._applied_mark = self._offset.to_bytes(_MARK_BYTES, "little")
                self._mark[:_MARK_BYTES] = self._applied_mark
                self._last_seq = entry.seq
                return entry

            yield append
        finally:
            os.close(fd)  # closing the descriptor releases the lock


_MARK_BYTES = 8


def _shared_mark(path: Path) -> mmap.mmap:
    """Eight bytes of ``path`` mapped shared: every process that maps it (or inherits it) sees each store."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if os.fstat(fd).st_size < _MARK_BYTES:
            # Extends with zeros; a file another process already extended is left as it is.
            os.ftruncate(fd, _MARK_BYTES)
        return mmap.mmap(fd, _MARK_BYTES, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
