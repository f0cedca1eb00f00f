"""The run directory: files the worker processes of one ``flaskserve serve`` share.

gunicorn's workers are separate processes, each with its own copy of the app;
what one of them changes at run time (a model loaded through the repository
API) reaches the others through files here (the repository journal, see
:mod:`flaskserve.lifecycle.journal`). ``flaskserve serve`` creates a fresh directory
in the master before it builds the app, passes it to :func:`~flaskserve.app.create_app`,
names it in ``FLASKSERVE_RUN_DIR`` for the workers' child processes, and removes it
when the master exits. An app built
without it (tests, ``flask run``) keeps every change to its own process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flaskserve.shared_dirs import shared_directory

__all__ = ["ENV_VAR", "run_directory"]

ENV_VAR = "FLASKSERVE_RUN_DIR"


@contextmanager
def run_directory() -> Iterator[Path]:
    """A fresh run directory named in ``FLASKSERVE_RUN_DIR``: no journal of an earlier run is replayed."""
    with shared_directory(ENV_VAR, "flaskserve-run-") as path:
        yield path
