"""What a model version's files are, seen two ways: a stat signature and a content digest.

The stat signature (each file's path, size, modification time and inode) is cheap
and says whether a folder is still being written: a version is complete once its
signature is the same on two looks in a row, or at once when it was published
atomically (renamed into place with :data:`PUBLISHED_MARKER` inside it, as
``flaskserve publish`` does). The content digest (SHA-256 over every file's path and
bytes) says whether a version really changed: a file copied again with the same
bytes, or only touched, is the same version. Digests are kept per file under its
stat signature, so a folder that did not change is not read again.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["PUBLISHED_MARKER", "DigestCache", "folder_signature", "version_folder"]

#: A file in a version folder saying it was renamed into place whole: it is taken on first sight.
PUBLISHED_MARKER = ".published"

_CHUNK = 1 << 20

#: (path relative to the folder, size, mtime in ns, inode) of each file, sorted.
Signature = tuple[tuple[str, int, int, int], ...]


def version_folder(model_file: Path) -> Path:
    """The folder whose files make one version: the model file's own folder."""
    return model_file.parent


def folder_signature(folder: Path) -> Signature:
    """Every file under ``folder`` with its size, mtime and inode; empty when the folder is gone."""
    entries = []
    for directory, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(directory, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue  # removed while we looked: the next look sees the folder as it is then
            entries.append((os.path.relpath(path, folder), stat.st_size, stat.st_mtime_ns, stat.st_ino))
    return tuple(sorted(entries))


class DigestCache:
    """Content digests of version folders, each file read again only when its stat signature changed."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[tuple[int, int, int], str]] = {}

    def digest(self, folder: Path) -> str:
        """SHA-256 over the sorted paths and contents of every file under ``folder``."""
        total = hashlib.sha256()
        for relative, size, mtime_ns, inode in folder_signature(folder):
            path = str(folder / relative)
            key = (size, mtime_ns, inode)
            cached = self._files.get(path)
            if cached is None or cached[0] != key:
                try:
                    cached = (key, _file_digest(path))
                except OSError:
                    continue
                self._files[path] = cached
            total.update(relative.encode("utf-8", "surrogateescape") + b"\0" + cached[1].encode() + b"\n")
        return total.hexdigest()


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
