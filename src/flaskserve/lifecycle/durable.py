"""Flushing to disk what a rename is about to publish, so that a crash never publishes it half written.

Both commands that change a repository on the operator's behalf — a new version
folder (:mod:`~flaskserve.lifecycle.publish`) and a pin written into a settings file
(:mod:`~flaskserve.lifecycle.pinning`) — write under a hidden name and rename: the
bytes must reach the disk before the rename, and the rename itself (the folder
that names the file) after it, or a power cut could leave a name on empty bytes.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["flush"]


def flush(path: Path) -> None:
    """fsync a file or folder; a file system that cannot (some refuse folders) is left as it is."""
    fd = os.open(path, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
