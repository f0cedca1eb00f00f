"""Metric values kept in this process's files, without asking the kernel for the pid on every write.

In multiprocess mode ``prometheus_client`` stores each metric value in a file
per process and kind (``counter_<pid>.db``, ``gauge_livesum_<pid>.db``, ...)
that its multiprocess collector sums at scrape time. Its own value class calls
``os.getpid()`` on every write to notice a fork; a served request writes about
seven values, and those system calls were among the largest costs of a worker
answering one-row predictions (see docs/performance.md).

:class:`ProcessFileValue` writes the same files, through the library's own
file class and key format, but learns the pid once and again in a forked
child, from a hook that runs after every ``os.fork()``. As with the library's
class, a value a forked child touches is reopened in a file of the child's pid
(from its count there: zero, or a dead worker's of the same pid), so what the
child counts is never added to its parent's file. Only the values the child
touches are reopened, so a process that forks without touching a metric
creates no file, and a value left from a server whose directory is gone does
not fail a later one's child.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from prometheus_client import values
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from flaskserve.observability.multiprocess import ENV_VAR

__all__ = ["ProcessFileValue", "install"]


class _ThisProcess:
    """The process's id, its open metric files and the lock that guards writing them.

    One lock for every value of the process: a write takes well under a
    microsecond and is rarely contended.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        #: By directory and kind: values made in two metrics directories (two test servers) stay apart.
        self.files: dict[tuple[str, str], MmapedDict] = {}
        #: One more in each forked child: a value opened in an earlier generation is in an ancestor's file.
        self.generation = 0

    def file(self, directory: str, kind: str) -> MmapedDict:
        """This pid's file of values of ``kind`` (``counter``, ``gauge_livesum``, ...); lock held."""
        found = self.files.get((directory, kind))
        if found is None:
            path = os.path.join(directory, f"{kind}_{self.pid}.db")
            found = self.files[directory, kind] = MmapedDict(path)  # type: ignore[no-untyped-call]
        return found

    def after_fork_in_child(self) -> None:
        """Take the child's pid and let go of the parent's files; values reopen their own when touched."""
        # A thread of the parent may have held the lock at the fork; it does not exist here.
        self.lock = threading.Lock()
        self.pid = os.getpid()
        self.generation += 1
        inherited, self.files = self.files, {}
        for file in inherited.values():
            file.close()  # type: ignore[no-untyped-call]


_PROCESS = _ThisProcess()
_fork_hook_registered = False


class ProcessFileValue:
    """One metric value (a counter, a gauge, a histogram's sum or bucket) in this process's file.

    Built by ``prometheus_client``'s metrics through ``values.ValueClass``; the
    arguments are theirs. The value is read back from the file when it is
    opened, so a worker that gets the pid of a dead one carries on its counts
    rather than overwriting them, as ``prometheus_client``'s own class does.
    """

    _multiprocess = True
    _value: float
    _timestamp: float
    _file: MmapedDict
    _generation: int

    def __init__(
        self,
        typ: str,
        metric_name: str,
        name: str,
        labelnames: list[str],
        labelvalues: list[str],
        help_text: str,
        multiprocess_mode: str = "",
        **kwargs: Any,
    ) -> None:
        self._directory = os.environ[ENV_VAR]
        self._kind = f"{typ}_{multiprocess_mode}" if typ == "gauge" else typ
        self._key: str = mmap_key(metric_name, name, labelnames, labelvalues, help_text)
        with _PROCESS.lock:
            # Opened now, as the library does: the series is in the file, at zero, before its first count.
            self._open()

    def _open(self) -> None:
        """Find the value in this process's file, adding it at zero; the process lock is held."""
        self._generation = _PROCESS.generation
        self._file = _PROCESS.file(self._directory, self._kind)
        self._value, self._timestamp = self._file.read_value(self._key)  # type: ignore[no-untyped-call]

    def inc(self, amount: float) -> None:
        process = _PROCESS
        with process.lock:
            if self._generation != process.generation:
                self._open()
            self._value += amount
            self._timestamp = 0.0
            self._file.write_value(self._key, self._value, 0.0)  # type: ignore[no-untyped-call]

    def set(self, value: float, timestamp: float | None = None) -> None:
        process = _PROCESS
        with process.lock:
            if self._generation != process.generation:
                self._open()
            self._value = value
            self._timestamp = timestamp or 0.0
            self._file.write_value(self._key, value, self._timestamp)  # type: ignore[no-untyped-call]

    def get(self) -> float:
        process = _PROCESS
        with process.lock:
            if self._generation != process.generation:
                self._open()
            return self._value

    def set_exemplar(self, exemplar: Any) -> None:
        """Exemplars are not kept in multiprocess mode (nor by ``prometheus_client``'s own class)."""

    def get_exemplar(self) -> None:
        return None


def install() -> None:
    """Make every metric created from now on keep its values in this process's files.

    ``prometheus_client``'s metrics build their values with whatever class
    ``prometheus_client.values.ValueClass`` names when they are created; the
    directory is the one ``PROMETHEUS_MULTIPROC_DIR`` names when each metric is created.
    """
    global _fork_hook_registered
    if not _fork_hook_registered:
        # This module may have been imported before a fork that no hook saw.
        _PROCESS.pid = os.getpid()
        os.register_at_fork(after_in_child=_PROCESS.after_fork_in_child)
        _fork_hook_registered = True
    values.ValueClass = ProcessFileValue
