"""``flaskserve pin`` and ``unpin``: write a model's pin into its ``model-settings.toml``, atomically.

The pin is ``pin = "N"`` in the file's ``[versions]`` table
(:class:`~flaskserve.settings.VersionPolicy`): it survives restarts, and a
watching server serves the pinned version alone from its next look. Only the
``pin`` line changes; the rest of the file is kept as written, comments
included, so the rule below the pin (``latest``, ``specific``) serves again once
it is removed. The new text is read back before it replaces the file: a file
whose ``[versions]`` is not a plain table (an inline table, dotted keys) is
refused rather than rewritten wrongly. It is written to a hidden file beside the
old one, flushed and renamed over it in one step, so that a server never reads
half of it; a watcher takes a settings file replaced so at its next look
(:mod:`~flaskserve.lifecycle.watcher`).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from flaskserve.errors import ConfigError
from flaskserve.lifecycle.durable import flush
from flaskserve.models.loaders import LoaderTable
from flaskserve.models.repository import MODEL_SETTINGS_FILE, check_model_name, scan_model, version_key

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["pin", "unpin"]

#: A table header line, ``[name]`` (not ``[[name]]``, nor an array's row such as ``[1, 2]``).
_HEADER = re.compile(r"\s*\[\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\s*(#.*)?")
_PIN_LINE = re.compile(r"\s*pin\s*=")
_TABLE = "versions"


def pin(model_dir: Path, version: str, loaders: LoaderTable) -> str:
    """Pin ``version`` of the model in ``model_dir`` (REPOSITORY/NAME); returns the version as written.

    Raises :class:`ConfigError` when the model has no such version, so that a
    typing error never pins a model to nothing.
    """
    versions = _versions(model_dir, loaders)
    number = str(int(version)) if version.isascii() and version.isdigit() else None
    if number is None or number not in versions:
        raise ConfigError(
            f"model '{model_dir.name}' has no version {version!r}; its versions: {', '.join(versions)}"
        )
    _rewrite(model_dir / MODEL_SETTINGS_FILE, number)
    return number


def unpin(model_dir: Path) -> bool:
    """Remove the pin of the model in ``model_dir``; ``False`` when it had none (nothing is written)."""
    check_model_name(model_dir.name)
    path = model_dir / MODEL_SETTINGS_FILE
    if not model_dir.is_dir():
        raise ConfigError(f"'{model_dir}' is not a model folder")
    if _read(path).get(_TABLE, {}).get("pin") is None:
        return False
    _rewrite(path, None)
    return True


def _versions(model_dir: Path, loaders: LoaderTable) -> list[str]:
    check_model_name(model_dir.name)
    if not model_dir.is_dir():
        raise ConfigError(f"'{model_dir}' is not a model folder (REPOSITORY/NAME)")
    sources = scan_model(model_dir.resolve().parent, model_dir.name, loaders)
    if not sources:
        raise ConfigError(f"'{model_dir}' holds no model version")
    return sorted({s.version for s in sources}, key=version_key)


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"'{path}' cannot be read as TOML: {exc}") from exc


def _rewrite(path: Path, version: str | None) -> None:
    """Set (``version``) or remove (``None``) the ``pin`` line of ``[versions]``, atomically."""
    before = _read(path)
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    after = _with_pin(text, version)
    expected = {key: dict(value) if isinstance(value, dict) else value for key, value in before.items()}
    table = expected.setdefault(_TABLE, {})
    if not isinstance(table, dict):
        raise ConfigError(f"'{path}': 'versions' must be a table to hold a pin")
    table.pop("pin", None)
    if version is not None:
        table["pin"] = version
    if not table:
        expected.pop(_TABLE)
    try:
        rewritten: Any = tomllib.loads(after)
    except tomllib.TOMLDecodeError:
        rewritten = None
    if rewritten != expected:
        raise ConfigError(
            f"'{path}' writes [versions] in a form this command does not rewrite (an inline table or "
            f'dotted keys): write the pin by hand, pin = "{version}" under [versions]'
            if version is not None
            else f"'{path}' writes [versions] in a form this command does not rewrite: remove its pin by hand"
        )
    _replace(path, after)


def _with_pin(text: str, version: str | None) -> str:
    lines = text.splitlines(keepends=True)
    headers = [i for i, line in enumerate(lines) if _HEADER.fullmatch(line.rstrip("\r\n"))]
    start = next((i for i in headers if _table_name(lines[i]) == _TABLE), None)
    if start is None:
        if version is None:
            return text
        prefix = text if not text or text.endswith("\n") else text + "\n"
        return prefix + ("\n" if prefix else "") + f'[{_TABLE}]\npin = "{version}"\n'
    end = next((i for i in headers if i > start), len(lines))
    body = [line for line in lines[start + 1 : end] if not _PIN_LINE.match(line)]
    if version is not None:
        body.insert(0, f'pin = "{version}"\n')
    header = [lines[start]]
    if not any(line.strip() for line in body):
        header = []  # nothing but the pin was in the table
    return "".join(lines[:start] + header + body + lines[end:])


def _table_name(line: str) -> str:
    match = _HEADER.fullmatch(line.rstrip("\r\n"))
    return match.group(1).strip().strip("\"'") if match else ""


def _replace(path: Path, text: str) -> None:
    """Write ``text`` beside ``path`` under a hidden name, flush it, and rename it over ``path``."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(staging, mode)
        os.replace(staging, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(staging)
        raise
    flush(path.parent)
