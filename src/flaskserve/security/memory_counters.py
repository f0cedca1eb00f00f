"""Fixed-window counters in a worker's memory, expired when read rather than by a timer thread.

``limits``' own ``MemoryStorage`` expires keys from a ``threading.Timer`` that it starts
again whenever the last one has run out — every 10 ms under steady traffic — and each start
(a new thread) costs about a millisecond of CPU: some 25 µs a request, more than the count
itself. The rate-limit policy needs only fixed windows (an increment that tells the count,
and the window's end for the headers), and a window that ran out can be noticed by the next
request that touches it. So here a counter is one dict entry, ``key → (count, window end)``,
reset when it is found expired, and the whole table is swept of expired entries at most once
a second from the request that notices it is due: the memory held stays bounded by the keys
used within the longest window, with no thread.

It is a ``limits`` storage (the :class:`~limits.storage.Storage` interface), so the policy
treats it as it treats Redis; it registers no URI scheme of its own: ``memory://`` picks it.
"""

from __future__ import annotations

import threading
import time

from limits.storage import Storage

__all__ = ["MemoryCounters"]

#: Seconds between sweeps of expired counters (each sweep is one pass over the table).
SWEEP_INTERVAL_S = 1.0


class MemoryCounters(Storage):
    """Fixed-window counters for one process; safe to share between its threads."""

    def __init__(self) -> None:
        super().__init__(wrap_exceptions=True)
        self._windows: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._next_sweep = time.monotonic() + SWEEP_INTERVAL_S

    @property
    def base_exceptions(self) -> type[Exception]:
        return ValueError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Count ``amount`` in ``key``'s window, opening a window of ``expiry`` seconds if none is open."""
        now = time.time()
        with self._lock:
            self._sweep_if_due()
            count, ends = self._windows.get(key, (0, now))
            if ends <= now:
                count, ends = 0, now + expiry
            count += amount
            self._windows[key] = (count, ends)
            return count

    def get(self, key: str) -> int:
        count, ends = self._windows.get(key, (0, 0.0))
        return count if ends > time.time() else 0

    def get_expiry(self, key: str) -> float:
        """The end of ``key``'s window, in seconds since the epoch (now when no window is open)."""
        now = time.time()
        _, ends = self._windows.get(key, (0, now))
        return ends if ends > now else now

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            cleared = len(self._windows)
            self._windows.clear()
        return cleared

    def clear(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)

    def __len__(self) -> int:
        return len(self._windows)

    def _sweep_if_due(self) -> None:
        """Drop every window that has ended; called with the lock held, at most every ``SWEEP_INTERVAL_S``."""
        moment = time.monotonic()
        if moment < self._next_sweep:
            return
        self._next_sweep = moment + SWEEP_INTERVAL_S
        now = time.time()
        ended = [key for key, (_, ends) in self._windows.items() if ends <= now]
        for key in ended:
            del self._windows[key]
