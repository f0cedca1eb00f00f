"""The directory where every gunicorn worker keeps its share of the metrics.

``prometheus_client`` sums metrics over processes by having each one write its
values to files in the directory named by ``PROMETHEUS_MULTIPROC_DIR``.
``flaskserve serve`` creates a fresh directory in the master process before the
app and its metrics are built (a directory left over from an earlier run would
add that run's counts), makes the metrics created inside it keep their values
there (with :class:`~flaskserve.observability.process_values.ProcessFileValue`,
whatever ``prometheus_client`` chose when it was imported), and removes it when
the master exits. When a worker dies, :func:`mark_worker_dead` drops its live
gauges (requests in flight) while its counters stay in the sums.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flaskserve.shared_dirs import shared_directory

__all__ = ["ENV_VAR", "directory_in_use", "mark_worker_dead", "metrics_directory"]

#: The variable ``prometheus_client`` reads to switch to multiprocess mode.
ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def metrics_directory() -> Iterator[Path]:
    """A fresh metrics directory named in ``PROMETHEUS_MULTIPROC_DIR``; enter it before the app is built.

    Metrics created inside the block keep their values in per-process files there.
    """
    from prometheus_client import values

    from flaskserve.observability import process_values

    with shared_directory(ENV_VAR, "flaskserve-metrics-") as path:
        previous = values.ValueClass
        process_values.install()
        try:
            yield path
        finally:
            values.ValueClass = previous


def directory_in_use() -> str | None:
    """The multiprocess directory this process writes metrics to, if any.

    ``None`` when the variable names a directory but metrics keep their values in
    memory (it was set only after ``prometheus_client`` was imported, outside
    :func:`metrics_directory`): reading the directory would then report nothing
    of this process's requests.
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
