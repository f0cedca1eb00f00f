"""The directory where every gunicorn worker keeps its share of the metrics.

``prometheus_client`` sums metrics over processes by having each one write its
values to files in the directory named by ``PROMETHEUS_MULTIPROC_DIR``, and it
decides whether to do so when it is first imported. ``flaskserve serve``
therefore creates a fresh directory in the master process before anything
imports ``prometheus_client`` (a directory left over from an earlier run would
add that run's counts), and removes it when the master exits. When a worker
dies, :func:`mark_worker_dead` drops its live gauges (requests in flight)
while its counters stay in the sums.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["ENV_VAR", "directory_in_use", "mark_worker_dead", "metrics_directory"]

#: The variable ``prometheus_client`` reads to switch to multiprocess mode.
ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def metrics_directory() -> Iterator[Path]:
    """Create a fresh metrics directory, point ``PROMETHEUS_MULTIPROC_DIR`` at it, remove it on exit.

    Enter it before the app is built. Only the process that entered it cleans
    up: gunicorn forks workers inside this block, and a worker unwinding through
    it on exit must not delete the directory its siblings still write to.
    """
    owner = os.getpid()
    path = Path(tempfile.mkdtemp(prefix="flaskserve-metrics-"))
    previous = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = str(path)
    try:
        yield path
    finally:
        if os.getpid() == owner:
            shutil.rmtree(path, ignore_errors=True)
            if previous is None:
                os.environ.pop(ENV_VAR, None)
            else:
                os.environ[ENV_VAR] = previous


def directory_in_use() -> str | None:
    """The multiprocess directory this process writes metrics to, if any.

    ``None`` when the variable was set only after ``prometheus_client`` was
    imported: values then live in memory, and reading the directory would
    report nothing of this process's requests.
    """
    path = os.environ.get(ENV_VAR)
    if not path:
        return None
    from prometheus_client import values

    return None if values.ValueClass is values.MutexValue else path


def mark_worker_dead(pid: int) -> None:
    """Forget the live gauges of a worker that exited; a no-op outside multiprocess mode."""
    path = directory_in_use()
    if path is None:
        return
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
