"""The prediction cache: a bounded, thread-safe LRU of model answers, with an optional TTL.

Keys are made by :class:`KeyMaker` from what the model actually sees — the model
name, version and file digest, the method, and the decoded input matrix (dtype,
shape and bytes, hashed with BLAKE2b; texts by their UTF-8 bytes and lengths) — so request ids, headers, JSON
formatting and the protocol a request came through never change the key, and
identical rows sent through two protocols share an entry. Only successful
answers are stored; errors are never cached.

Stored answers are read-only copies, so no caller can change what another
caller will receive.

An answer may also keep the *request forms* that asked for it (:meth:`PredictionCache.attach`):
a key made from the request's own bytes, with whatever the caller needs to answer that
request again without decoding it (its encoded reply). A form lives exactly as long as
its answer: it is found only while the answer is (:meth:`PredictionCache.replay` touches
and expires the answer as :meth:`PredictionCache.get` does), it is dropped with it, and
its bytes count against ``max_bytes`` with the answer's.
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
#: What one request form costs beyond the bytes its caller declares (key, bookkeeping).
FORM_OVERHEAD_BYTES = 200
#: Request forms one answer keeps at most: byte-different bodies for the same rows are few in practice,
#: and a client that varies its formatting endlessly must not grow one entry without bound.
MAX_FORMS_PER_ANSWER = 4


class AnswerCache(Protocol):
    """What the prediction path needs of a cache: this module's LRU, or it with a shared tier behind."""

    def get(self, key: bytes) -> Matrix | None: ...

    def put(self, key: bytes, values: Matrix) -> Matrix | None:
        """Store ``values``; the read-only copy now held, or None when it was not stored."""
        ...


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


class _Entry:
    """One stored answer, when it expires (0: never), what it costs, and the request forms that ask for it."""

    __slots__ = ("cost", "expires", "forms", "values")

    def __init__(self, values: Matrix, expires: float, cost: int) -> None:
        self.values = values
        self.expires = expires
        self.cost = cost
        self.forms: list[bytes] = []


class PredictionCache:
    """Least-recently-used answers, bounded by entry count and by bytes, optionally expiring.

    ``max_bytes`` bounds the answers' bytes plus :data:`ENTRY_OVERHEAD_BYTES` per entry,
    plus the request forms attached to them; an answer larger than the whole budget is not stored.
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
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        #: Request form key -> (the key of the answer it asks for, what its caller keeps for it).
        self._forms: dict[bytes, tuple[bytes, object]] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def forms(self) -> int:
        """Request forms held, over all answers."""
        return len(self._forms)

    def get(self, key: bytes) -> Matrix | None:
        """The stored answer, or None when absent or expired."""
        with self._lock:
            entry = self._live(key)
            return None if entry is None else entry.values

    def put(self, key: bytes, values: Matrix) -> Matrix | None:
        """Store a successful answer (a read-only copy), evicting the least recently used as needed.

        Returns the copy now held, or None when the answer alone is over the byte budget.
        """
        cost = values.nbytes + ENTRY_OVERHEAD_BYTES
        if self.max_bytes is not None and cost > self.max_bytes:
            return None
        stored = np.array(values, copy=True)
        stored.flags.writeable = False
        expires = self._clock.monotonic() + self.ttl_s if self.ttl_s else 0.0
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = _Entry(stored, expires, cost)
            self._bytes += cost
            self._evict()
        return stored

    def attach(self, key: bytes, values: Matrix, form: bytes, kept: object, cost: int) -> bool:
        """Keep ``kept`` for request form ``form`` beside the answer stored under ``key``.

        ``values`` must be the very array :meth:`get` or :meth:`put` gave for that answer:
        if the entry was replaced or dropped meanwhile, nothing is kept. ``cost`` is the
        bytes ``kept`` holds beyond the answer. Returns whether it was kept.
        """
        cost += FORM_OVERHEAD_BYTES
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.values is not values or form in self._forms:
                return False
            if len(entry.forms) >= MAX_FORMS_PER_ANSWER:
                return False
            if self.max_bytes is not None and entry.cost + cost > self.max_bytes:
                return False
            entry.forms.append(form)
            entry.cost += cost
            self._forms[form] = (key, kept)
            self._bytes += cost
            self._entries.move_to_end(key)
            self._evict()
        return True

    def replay(self, form: bytes) -> object | None:
        """What was kept for request form ``form``, while its answer is stored and fresh; else None.

        Counts as a use of the answer, exactly as :meth:`get` of its key would.
        """
        with self._lock:
            found = self._forms.get(form)
            if found is None:
                return None
            key, kept = found
            return kept if self._live(key) is not None else None

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._forms.clear()
            self._bytes = 0

    def _live(self, key: bytes) -> _Entry | None:
        """The entry under ``key``, marked most recently used; None (and dropped) once expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires and self._clock.monotonic() >= entry.expires:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def _evict(self) -> None:
        while len(self._entries) > self.max_entries or (
            self.max_bytes is not None and self._bytes > self.max_bytes
        ):
            self._drop(next(iter(self._entries)))

    def _drop(self, key: bytes) -> None:
        entry = self._entries.pop(key)
        for form in entry.forms:
            del self._forms[form]
        self._bytes -= entry.cost
