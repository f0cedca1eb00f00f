"""The run directory: files the worker processes of one ``flaskserve serve`` share.

gunicorn's workers are separate processes, each with its own copy of the app;
what one of them changes at run time (a model loaded through the repository
API) reaches the others through files here (the repository journal, see
:mod:`flaskserve.models.journal`). ``flaskserve serve`` creates a fresh directory
in the master before it builds the app, names it in ``FLASKSERVE_RUN_DIR`` for
the app and the workers, and removes it when the master exits. An app built
without it (tests, ``flask run``) keeps every change to its own process.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["ENV_VAR", "run_directory", "run_directory_in_use"]

ENV_VAR = "FLASKSERVE_RUN_DIR"


@contextmanager
def run_directory() -> Iterator[Path]:
    """Create a fresh, private run directory, name it in ``FLASKSERVE_RUN_DIR``, remove it on exit.

    Fresh, so that no journal of an earlier run is replayed. Only the process that
    entered the block cleans up: workers forked inside it unwind through it too,
    and must not delete what their siblings still use.
    """
    owner = os.getpid()
    path = Path(tempfile.mkdtemp(prefix="flaskserve-run-"))
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


def run_directory_in_use() -> Path | None:
    """The run directory this process shares with its sibling workers, if it has one."""
    value = os.environ.get(ENV_VAR)
    if not value:
        return None
    path = Path(value)
    return path if path.is_dir() else None
