"""The prediction cache's second tier: answers shared by every worker and replica through Redis.

Each process keeps its own :class:`~flaskserve.inference.cache.PredictionCache`
as the first tier; :class:`TieredCache` puts a :class:`SharedTier` behind it.
A first-tier miss asks the shared tier, and a hit there is copied into the first
tier; a fresh answer goes into both. Keys are the first tier's own
(:class:`~flaskserve.inference.cache.KeyMaker`: model, version, file digest,
method, dtype, shape and bytes of the input), so versions never mix.

What the shared tier guarantees
    * **Data only.** An answer is stored as a small JSON header (dtype, shape)
      and its raw bytes, or, for texts, a JSON list of strings
      (:func:`encode_answer`). Reading one back (:func:`decode_answer`) builds
      an array of a plain numeric, boolean or text dtype from those bytes and
      checks that they fit the shape exactly. Nothing is unpickled, so a value
      written into Redis by anyone else runs no code: anything that does not
      decode is a miss, and it is counted.
    * **A bounded wait.** Every Redis call has a socket timeout of a few
      milliseconds and no retry. A call that fails (refused, timed out, a wrong
      answer) is counted and the request is answered by the model. After
      :data:`FAILURES_BEFORE_PAUSE` failures in a row the tier stays quiet for
      :data:`PAUSE_AFTER_ERROR_S`, so a Redis that is down or hanging costs a few
      bounded waits a second, not one a request, while a lone slow answer on a
      busy machine costs one miss. Nothing here raises into the request: a
      cache is never a 5xx.
    * **Bounded entries.** Each entry expires after ``ttl_s``, and answers
      larger than ``max_entry_bytes`` once encoded stay in the first tier only.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np
import orjson

from flaskserve.credentials import redact_url
from flaskserve.errors import ConfigError
from flaskserve.inference.cache import Matrix, PredictionCache
from flaskserve.inference.clock import Clock, SystemClock

__all__ = [
    "FAILURES_BEFORE_PAUSE",
    "PAUSE_AFTER_ERROR_S",
    "RedisTier",
    "SharedTier",
    "TieredCache",
    "decode_answer",
    "encode_answer",
    "shared_tier",
]

log = logging.getLogger("flaskserve.cache")

#: Failures in a row after which the shared tier is left alone for a while.
FAILURES_BEFORE_PAUSE = 3
#: Seconds the shared tier is left alone after :data:`FAILURES_BEFORE_PAUSE` failures in a row.
PAUSE_AFTER_ERROR_S = 1.0
#: The first bytes of every stored answer; a value without them is not one of ours.
_MAGIC = b"FSC1"
#: dtype kinds an answer may decode to: booleans, integers, floats, complex numbers, fixed-width texts.
_PLAIN_KINDS = frozenset("biufcU")
#: The header's dtype for object arrays of texts, stored as a JSON list.
_TEXTS = "texts"
_MAX_DIMENSIONS = 8
_HEADER_LENGTH_BYTES = 2
_REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})
_LOCAL_SCHEMES = frozenset({"memory"})

#: Called with the operation (``get``, ``put``, ``decode``) each time the shared tier fails.
ErrorCounter = Callable[[str], None]


class SharedTier(Protocol):
    """Answers shared between processes; both methods fail quietly (a miss, a lost put)."""

    def get(self, key: bytes) -> Matrix | None: ...

    def put(self, key: bytes, values: Matrix) -> None: ...


class TieredCache:
    """The process's own LRU first, a :class:`SharedTier` second."""

    def __init__(self, local: PredictionCache, shared: SharedTier) -> None:
        self.local = local
        self.shared = shared

    def get(self, key: bytes) -> Matrix | None:
        """The first tier's answer, else the shared tier's, which the first then holds (its copy returned)."""
        found = self.local.get(key)
        if found is not None:
            return found
        found = self.shared.get(key)
        if found is not None:
            held = self.local.put(key, found)
            return held if held is not None else found
        return found

    def put(self, key: bytes, values: Matrix) -> Matrix | None:
        held = self.local.put(key, values)
        self.shared.put(key, values)
        return held


def encode_answer(values: Matrix) -> bytes | None:
    """``values`` as bytes that :func:`decode_answer` reads back, or None if it has no data-only form."""
    if values.dtype.kind == "O":
        items = values.reshape(-1).tolist()
        if not all(isinstance(item, str) for item in items):
            return None
        header: dict[str, Any] = {"dtype": _TEXTS, "shape": list(values.shape)}
        payload = orjson.dumps(items)
    elif values.dtype.kind in _PLAIN_KINDS and values.dtype.fields is None:
        header = {"dtype": values.dtype.str, "shape": list(values.shape)}
        payload = np.ascontiguousarray(values).tobytes()
    else:
        return None
    head = orjson.dumps(header)
    return _MAGIC + len(head).to_bytes(_HEADER_LENGTH_BYTES, "big") + head + payload


def decode_answer(data: bytes) -> Matrix | None:
    """The answer ``data`` holds, read-only, or None when it is not a well-formed answer.

    Only builds arrays of plain dtypes from bytes, so a value forged by anyone who can
    write to the store is at worst a miss.
    """
    start = len(_MAGIC) + _HEADER_LENGTH_BYTES
    if len(data) < start or not data.startswith(_MAGIC):
        return None
    end = start + int.from_bytes(data[len(_MAGIC) : start], "big")
    try:
        header = orjson.loads(data[start:end])
        dtype_text, shape = header["dtype"], header["shape"]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        return None
    if not (isinstance(shape, list) and len(shape) <= _MAX_DIMENSIONS):
        return None
    if not all(isinstance(size, int) and not isinstance(size, bool) and size >= 0 for size in shape):
        return None
    payload = data[end:]
    count = math.prod(shape)
    if dtype_text == _TEXTS:
        return _decode_texts(payload, shape, count)
    if not isinstance(dtype_text, str):
        return None
    try:
        dtype = np.dtype(dtype_text)
    except (TypeError, ValueError):
        return None
    if dtype.kind not in _PLAIN_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        return None
    if count * dtype.itemsize != len(payload):
        return None
    values = np.frombuffer(payload, dtype=dtype).reshape(shape)
    values.flags.writeable = False
    return values


def _decode_texts(payload: bytes, shape: list[int], count: int) -> Matrix | None:
    try:
        items = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not (isinstance(items, list) and len(items) == count and all(isinstance(i, str) for i in items)):
        return None
    values = np.empty(count, dtype=object)
    values[:] = items
    values = values.reshape(shape)
    values.flags.writeable = False
    return values


class RedisTier:
    """Answers in Redis under ``PREFIX:cache:HEX-KEY``, each with a TTL; every call bounded by ``timeout_s``.

    ``client`` is a ``redis.Redis`` (or anything with its ``get`` and ``set``); it
    must be built with the timeout and without retries (:func:`shared_tier` does).
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str,
        ttl_s: float,
        max_entry_bytes: int,
        on_error: ErrorCounter | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._client = client
        self._prefix = f"{prefix}:cache:".encode()
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self.max_entry_bytes = max_entry_bytes
        self._on_error = on_error or (lambda _operation: None)
        self._clock: Clock = clock or SystemClock()
        self._quiet_until = 0.0
        self._failures_in_a_row = 0
        self._lock = threading.Lock()

    def get(self, key: bytes) -> Matrix | None:
        if self._paused():
            return None
        try:
            data = self._client.get(self._prefix + key.hex().encode())
        except Exception:
            self._failed("get")
            return None
        self._failures_in_a_row = 0
        if data is None:
            return None
        values = decode_answer(data) if isinstance(data, bytes) else None
        if values is None:
            self._on_error("decode")
            log.warning("a shared cache entry is not a well-formed answer; treated as a miss")
        return values

    def put(self, key: bytes, values: Matrix) -> None:
        if values.nbytes > self.max_entry_bytes or self._paused():
            return
        data = encode_answer(values)
        if data is None or len(data) > self.max_entry_bytes:
            return
        try:
            self._client.set(self._prefix + key.hex().encode(), data, px=self._ttl_ms)
        except Exception:
            self._failed("put")
            return
        self._failures_in_a_row = 0

    def _paused(self) -> bool:
        return self._clock.monotonic() < self._quiet_until

    def _failed(self, operation: str) -> None:
        self._on_error(operation)
        with self._lock:
            self._failures_in_a_row += 1
            pausing = self._failures_in_a_row >= FAILURES_BEFORE_PAUSE
            if pausing:
                self._failures_in_a_row = 0
                self._quiet_until = self._clock.monotonic() + PAUSE_AFTER_ERROR_S
        if pausing:
            log.warning(
                f"the shared prediction cache failed {FAILURES_BEFORE_PAUSE} calls in a row (the last a "
                f"{operation}); answering from the models alone for {PAUSE_AFTER_ERROR_S:g} s",
                exc_info=log.isEnabledFor(logging.DEBUG),
            )


def shared_tier(
    url: str,
    *,
    prefix: str,
    ttl_s: float,
    timeout_ms: float,
    max_entry_bytes: int,
    on_error: ErrorCounter | None = None,
) -> SharedTier | None:
    """The shared tier ``url`` names (``redis://HOST:PORT/DB``), or None for ``memory://`` (none)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in _LOCAL_SCHEMES:
        return None
    if scheme not in _REDIS_SCHEMES:
        raise ConfigError(
            f"cache_storage {redact_url(url)!r} is not usable; use 'memory://' or 'redis://HOST:PORT/DB'"
        )
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        raise ConfigError(
            "cache_storage uses Redis, which needs the redis package: pip install 'flaskserve[redis]'"
        ) from None
    timeout_s = timeout_ms / 1000.0
    try:
        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
    except ValueError as exc:
        raise ConfigError(
            f"cache_storage {redact_url(url)!r} is not a Redis URL: write redis://HOST:PORT/DB"
        ) from exc
    return RedisTier(client, prefix=prefix, ttl_s=ttl_s, max_entry_bytes=max_entry_bytes, on_error=on_error)
