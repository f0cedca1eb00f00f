"""The prediction cache: a bounded, thread-safe LRU of model answers, with an optional TTL.

Keys are made by :class:`KeyMaker` from what the model actually sees — the model
name, version and file digest, the method, and the decoded input matrix (dtype,
shape and bytes, hashed with BLAKE2b; texts by their UTF-8 bytes and lengths) — so request ids, headers, JSON
formatting and the protocol a request came through never change the key, and
identical rows sent through two protocols share an entry. Only successful
answers are stored; errors are never cached.

Stored answers are read-only copies, so no caller can change what another
caller will receive.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections import OrderedDict
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from flaskserve.inference.clock import Clock, SystemClock

Matrix = npt.NDArray[Any]

_DIGEST_BYTES = 16
#: What one entry costs beyond its answer's bytes (key, bookkeeping), counted against ``max_bytes``.
ENTRY_OVERHEAD_BYTES = 200


class AnswerCache(Protocol):
    """What the prediction path needs of a cache: this module's LRU, or it with a shared tier behind."""

    def get(self, key: bytes) -> Matrix | None: ...

    def put(self, key: bytes, values: Matrix) -> None: ...


class KeyMaker:
    """Makes cache keys for one (model version, method); the fixed part is hashed once."""

    def __init__(self, name: str, version: str, sha256: str, method: str) -> None:
        prefix = hashlib.blake2b(digest_size=_DIGEST_BYTES)
        for part in (name, version, sha256, method):
            prefix.update(part.encode())
            prefix.update(b"\0")
        self._prefix = prefix

    def key(self, matrix: Matrix) -> bytes:
        digest = self._prefix.copy()
        digest.update(f"{matrix.dtype.str}{matrix.shape}".encode())
        if matrix.dtype.kind == "O":
            # An object array's bytes are pointers: equal texts would miss, and a freed
            # pointer reused by another text would hit the wrong answer. Hash the texts.
            _update_with_objects(digest, matrix)
        else:
            digest.update(matrix.tobytes())  # C order whatever the layout, so views and copies agree
        return digest.digest()


def _update_with_objects(digest: Any, matrix: Matrix) -> None:
    """Feed every element's lengths, then its bytes: one canonical encoding, with no two texts alike.

    Strings count as their UTF-8 bytes (lone surrogates passed through, so nothing
    fails here); any other element as its type name and ``repr``, tagged apart.
    """
    parts: list[bytes] = []
    for item in matrix.reshape(-1).tolist():
        if isinstance(item, str):
            parts.append(b"s" + item.encode("utf-8", "surrogatepass"))
        elif isinstance(item, bytes):
            parts.append(b"b" + item)
        else:
            parts.append(f"r{type(item).__qualname__}:{item!r}".encode())
    digest.update(struct.pack(f"<{len(parts)}Q", *map(len, parts)))
    for part in parts:
        digest.update(part)


class PredictionCache:
    """Least-recently-used answers, bounded by entry count and by bytes, optionally expiring.

    ``max_bytes`` bounds the answers' bytes plus :data:`ENTRY_OVERHEAD_BYTES` per entry;
    an answer larger than the whole budget is not stored.
    """

    def __init__(
        self,
        max_entries: int,
        *,
        max_bytes: int | None = None,
        ttl_s: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError("a cache needs room for at least one entry")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, tuple[Matrix, float]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, key: bytes) -> Matrix | None:
        """The stored answer, or None when absent or expired."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            values, expires = entry
            if expires and self._clock.monotonic() >= expires:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return values

    def put(self, key: bytes, values: Matrix) -> None:
        """Store a successful answer (a read-only copy), evicting the least recently used as needed."""
        cost = values.nbytes + ENTRY_OVERHEAD_BYTES
        if self.max_bytes is not None and cost > self.max_bytes:
            return
        stored = np.array(values, copy=True)
        stored.flags.writeable = False
        expires = self._clock.monotonic() + self.ttl_s if self.ttl_s else 0.0
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (stored, expires)
            self._bytes += cost
            while len(self._entries) > self.max_entries or (
                self.max_bytes is not None and self._bytes > self.max_bytes
            ):
                self._drop(next(iter(self._entries)))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _drop(self, key: bytes) -> None:
        values, _ = self._entries.pop(key)
        self._bytes -= values.nbytes + ENTRY_OVERHEAD_BYTES
