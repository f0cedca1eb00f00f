"""Publish a model file into a repository atomically: the server sees the whole version or none of it.

The file is copied into a hidden folder beside the versions (``.publish-*``, which
no scan reads), flushed to disk with :data:`~flaskserve.models.fingerprint.PUBLISHED_MARKER`
beside it, and the folder is then renamed to its version number in one step. A
watching server therefore never meets a half-copied file, and, seeing the marker,
takes the version on its first look instead of waiting for its files to settle.
Any tool can follow the same convention (docs/operations.md).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from flaskserve.errors import ConfigError
from flaskserve.lifecycle.durable import flush
from flaskserve.models.fingerprint import PUBLISHED_MARKER
from flaskserve.models.loaders import LoaderTable
from flaskserve.models.repository import check_model_name, valid_version, version_key

__all__ = ["publish"]


def publish(source: Path, model_dir: Path, loaders: LoaderTable, *, version: int | None = None) -> Path:
    """Copy ``source`` (a model file, or a folder holding one) to ``model_dir/VERSION``; returns that folder.

    ``version`` defaults to one more than the newest version in ``model_dir``. An
    existing version is never overwritten: publish a new one (and pin the old one to roll back).
    """
    check_model_name(model_dir.name)
    files = sorted(p for p in source.iterdir() if p.is_file()) if source.is_dir() else [source]
    if len(loaders.model_files(files)) != 1:
        raise ConfigError(
            f"'{source}' must be, or hold exactly one, model file with one of {', '.join(loaders.suffixes)}"
        )
    model_dir.mkdir(parents=True, exist_ok=True)
    taken = [p.name for p in model_dir.iterdir() if p.is_dir() and valid_version(p.name)]
    number = version if version is not None else max((version_key(v) for v in taken), default=0) + 1
    target = model_dir / str(number)
    if target.exists():
        raise ConfigError(f"version {number} of '{model_dir.name}' exists already; publish a new version")
    staging = Path(tempfile.mkdtemp(prefix=".publish-", dir=model_dir))
    try:
        for file in files:
            shutil.copyfile(file, staging / file.name)
            flush(staging / file.name)
        (staging / PUBLISHED_MARKER).write_bytes(b"")
        staging.chmod(0o755)
        flush(staging)
        # rename(2) of a folder onto a missing name is one step; it fails if the name was taken meanwhile.
        os.rename(staging, target)
        flush(model_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
