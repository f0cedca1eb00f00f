"""Private directories that the processes of one ``flaskserve serve`` share.

gunicorn's workers are separate processes; what they must share at run time
(metrics files, the model repository journal) lives in files. The master makes
each such directory fresh before it builds the app — a directory left from an
earlier run would replay that run — names it in an environment variable that
the forked workers inherit, and removes it when it exits.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["shared_directory"]


@contextmanager
def shared_directory(env_var: str, prefix: str) -> Iterator[Path]:
    """Create a fresh private directory, name it in ``env_var``, and remove it on exit.

    Only the process that entered the block cleans up: workers forked inside it
    unwind through it too, and must not delete what their siblings still use.
    """
    owner = os.getpid()
    path = Path(tempfile.mkdtemp(prefix=prefix))
    previous = os.environ.get(env_var)
    os.environ[env_var] = str(path)
    try:
        yield path
    finally:
        if os.getpid() == owner:
            shutil.rmtree(path, ignore_errors=True)
            if previous is None:
                os.environ.pop(env_var, None)
            else:
                os.environ[env_var] = previous
