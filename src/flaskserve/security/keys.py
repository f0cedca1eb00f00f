"""API keys: who may call the server, and what each key may do.

A key is shown to the operator exactly once, when it is created; the key file keeps
only a verifier, the key's name, its scopes and its creation time. Someone who reads
the key file therefore learns which keys exist, but cannot call the server.

The verifier is a plain SHA-256 of the key. Slow password hashes (bcrypt, scrypt,
argon2) exist to make guessing *low-entropy human passwords* expensive; our keys are
256-bit random tokens from :mod:`secrets`, so there is nothing to guess and a fast
hash is already preimage-resistant. A fast hash also lets every request be checked in
microseconds and lets the store index keys by their hash.

Scopes
------
``predict``
    run predictions on every model.
``predict:MODEL``
    run predictions on the model named ``MODEL`` only.
``read``
    read metadata: model lists, signatures, API docs, the web page.
``metrics``
    read the Prometheus metrics.
``admin``
    everything above, plus loading and unloading models.

The key file is JSON, written atomically with mode 0600::

    {"version": 1, "keys": [{"name": "ci", "sha256": "…", "scopes": ["predict"],
                             "created_at": "2025-01-31T12:00:00+00:00"}]}
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from flaskserve.errors import KeyStoreError

__all__ = [
    "KEY_PREFIX",
    "SCOPES",
    "ApiKey",
    "KeyStore",
    "KeyStoreError",
    "normalize_scope",
    "validate_name",
]

log = logging.getLogger("flaskserve.security")

#: Prefix of every key, so that leaked keys are easy to recognise in logs and by secret scanners.
KEY_PREFIX = "fs_"

#: The scopes a key can carry; ``predict:MODEL`` narrows ``predict`` to one model.
SCOPES = ("predict", "read", "metrics", "admin")

_FILE_VERSION = 1
_NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MODEL_PATTERN = re.compile(r"[^\s:]{1,128}")
# A real key is ``fs_`` plus 43 characters; anything far longer is not worth hashing.
_MAX_PRESENTED_LENGTH = 256


def validate_name(name: str) -> str:
    """Return ``name`` if it can name a key, or raise :class:`KeyStoreError` saying why not.

    Names appear in logs and in ``keys list``, so they are kept to a short, plain alphabet.
    """
    if not _NAME_PATTERN.fullmatch(name):
        raise KeyStoreError(
            f"invalid key name {name!r}: use 1 to 64 letters, digits, '-', '_' or '.' (e.g. 'ci-deploy')"
        )
    return name


def normalize_scope(scope: str) -> str:
    """Return the canonical spelling of ``scope``, or raise :class:`KeyStoreError` naming the choices.

    Unknown scopes are rejected when a key is created rather than ignored later, so a
    typo such as ``perdict`` cannot produce a key that silently allows nothing.
    """
    text = scope.strip()
    if text in SCOPES:
        return text
    base, sep, model = text.partition(":")
    if base == "predict" and sep:
        if not _MODEL_PATTERN.fullmatch(model):
            raise KeyStoreError(
                f"invalid scope {scope!r}: write the model name after 'predict:', e.g. 'predict:iris'"
            )
        return text
    choices = ", ".join([*SCOPES[:1], "predict:MODEL", *SCOPES[1:]])
    raise KeyStoreError(f"unknown scope {scope!r}: choose from {choices}")


@dataclass(frozen=True)
class ApiKey:
    """What the server knows about a key once it has been verified: never the key itself."""

    name: str
    scopes: frozenset[str]
    created_at: datetime

    def allows(self, scope: str, model: str | None = None) -> bool:
        """Whether this key may do what ``scope`` names, on ``model`` when the scope is ``predict``.

        ``admin`` allows everything. ``predict`` with no ``model`` means the default
        model, whose name the caller may not know, so only the all-model ``predict``
        scope allows it. Scopes this key does not know fail closed.
        """
        if "admin" in self.scopes or scope == "open":
            return True
        if scope == "predict":
            return "predict" in self.scopes or (model is not None and f"predict:{model}" in self.scopes)
        return scope in SCOPES and scope in self.scopes


@dataclass(frozen=True)
class _Record:
    digest: str
    key: ApiKey


def _digest(presented: str) -> str:
    return hashlib.sha256(presented.encode("utf-8")).hexdigest()


class KeyStore:
    """The set of keys in one key file, indexed by the SHA-256 of each key.

    Changes (:meth:`create`, :meth:`revoke`) stay in memory until :meth:`save`.
    A server reads the file at start-up and then again whenever it changed
    (:meth:`refresh`, called by each worker's watcher every ``watch_interval_s``),
    so a revoked key stops working within one interval, without a restart.
    """

    def __init__(self, path: Path, keys: Iterable[tuple[str, ApiKey]] = ()) -> None:
        self.path = path
        self._by_digest: dict[str, _Record] = {}
        self._by_name: dict[str, _Record] = {}
        #: The key file's stat signature when it was last read (``None``: absent or never read).
        self._read_as: tuple[int, int, int] | None = None
        for digest, key in keys:
            self._add(_Record(digest, key))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> KeyStore:
        """Read the key file at ``path``; a file that does not exist yet is an empty store."""
        path = Path(path)
        seen = _stat_signature(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise KeyStoreError(f"cannot read key file {str(path)!r}: {exc.strerror}") from exc
        try:
            store = cls(path, _parse(json.loads(text)))
            store._read_as = seen
            return store
        except KeyError as exc:
            raise KeyStoreError(
                f"key file {str(path)!r} is not a valid flaskserve key file (a key lacks {exc.args[0]!r}); "
                "fix it or point --keys-file elsewhere"
            ) from exc
        except (ValueError, TypeError, KeyStoreError) as exc:
            raise KeyStoreError(
                f"key file {str(path)!r} is not a valid flaskserve key file ({exc}); "
                "fix it or point --keys-file elsewhere"
            ) from exc

    def __len__(self) -> int:
        return len(self._by_name)

    def refresh(self) -> bool:
        """Read the key file again if it changed since it was last read; ``True`` when the keys changed.

        The file is written atomically (:meth:`save`), so it is read whole or not at
        all. A file that cannot be read or is not valid, or that would take away every
        key of a store that had some, is refused: the keys in force stay, and the
        refusal is logged. (No keys would open every route to anyone; stop the server
        to run it without keys.)
        """
        seen = _stat_signature(self.path)
        if seen == self._read_as:
            return False
        try:
            fresh = KeyStore.load(self.path)
        except KeyStoreError as exc:
            log.error(
                "the key file changed but cannot be used; the keys in force stay", extra={"error": str(exc)}
            )
            self._read_as = seen
            return False
        self._read_as = seen
        if len(fresh) == 0 and len(self) > 0:
            log.error("the key file now holds no key; refusing to open the server, the keys in force stay")
            return False
        # One assignment each: a request checks its key against one table or the other, never a mix.
        self._by_digest = fresh._by_digest
        self._by_name = fresh._by_name
        log.info("API keys reloaded", extra={"keys": len(fresh)})
        return True

    def create(self, name: str, scopes: Iterable[str]) -> str:
        """Add a key called ``name`` with ``scopes`` and return the key: the only time it is visible."""
        validate_name(name)
        if name in self._by_name:
            raise KeyStoreError(f"a key named {name!r} already exists: revoke it first or pick another name")
        normalized = frozenset(normalize_scope(scope) for scope in scopes)
        if not normalized:
            raise KeyStoreError(f"key {name!r} needs at least one scope, e.g. 'predict' or 'read'")
        plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            name=name, scopes=normalized, created_at=datetime.now(timezone.utc).replace(microsecond=0)
        )
        self._add(_Record(_digest(plaintext), key))
        return plaintext

    def revoke(self, name: str) -> None:
        """Remove the key called ``name``."""
        record = self._by_name.pop(name, None)
        if record is None:
            raise KeyStoreError(f"no key named {name!r}: see 'flaskserve keys list' for the names")
        del self._by_digest[record.digest]

    def list(self) -> list[ApiKey]:
        """All keys, sorted by name."""
        return [self._by_name[name].key for name in sorted(self._by_name)]

    def verify(self, presented: str) -> ApiKey | None:
        """Return the key that ``presented`` is, or ``None`` if it is no key in this store.

        The dictionary lookup is keyed by the SHA-256 of what was presented, so its
        timing tells an attacker nothing about any stored key; the final comparison
        is constant-time all the same, so the check does not rest on that argument.
        """
        if not presented or len(presented) > _MAX_PRESENTED_LENGTH:
            return None
        digest = _digest(presented)
        record = self._by_digest.get(digest)
        if record is None or not hmac.compare_digest(record.digest, digest):
            return None
        return record.key

    def save(self) -> None:
        """Write the store to its file atomically, readable by its owner only.

        The new content goes to a temporary file in the same directory, which then
        replaces the old file in one step: a crash or a concurrent reader sees either
        the old file or the new one, never half of one.
        """
        document = {
            "version": _FILE_VERSION,
            "keys": [
                {
                    "name": record.key.name,
                    "sha256": record.digest,
                    "scopes": sorted(record.key.scopes),
                    "created_at": record.key.created_at.isoformat(),
                }
                for record in (self._by_name[name] for name in sorted(self._by_name))
            ],
        }
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        # mkstemp creates the file with mode 0600 whatever the umask.
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(document, file, indent=2)
                file.write("\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def _add(self, record: _Record) -> None:
        if record.key.name in self._by_name:
            raise KeyStoreError(f"key name {record.key.name!r} appears twice")
        if record.digest in self._by_digest:
            raise KeyStoreError(
                f"keys {record.key.name!r} and {self._by_digest[record.digest].key.name!r} are the same key"
            )
        self._by_name[record.key.name] = record
        self._by_digest[record.digest] = record


def _stat_signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _parse(document: Any) -> list[tuple[str, ApiKey]]:
    if not isinstance(document, dict) or document.get("version") != _FILE_VERSION:
        raise ValueError(f'expected an object with "version": {_FILE_VERSION}')
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise TypeError('"keys" must be a list')
    keys = []
    for entry in entries:
        digest = entry["sha256"]
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(f"key {entry.get('name')!r} has no valid sha256")
        scopes = entry["scopes"]
        if not isinstance(scopes, list) or not all(isinstance(scope, str) for scope in scopes):
            raise TypeError(f"key {entry.get('name')!r}: scopes must be a list of strings")
        created_at = datetime.fromisoformat(entry["created_at"])
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=timezone.utc)
        key = ApiKey(
            name=validate_name(entry["name"]),
            scopes=frozenset(normalize_scope(scope) for scope in scopes),
            created_at=created_at,
        )
        keys.append((digest, key))
    return keys
