"""Fixed-window counters in memory: counts within a window, a fresh window after it ends, a bounded table."""

from __future__ import annotations

import threading

import pytest

from flaskserve.security import memory_counters
from flaskserve.security.memory_counters import SWEEP_INTERVAL_S, MemoryCounters


class Clock:
    """Stands in for the ``time`` module: wall and monotonic time that move only when told."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(memory_counters, "time", fake)
    return fake


def test_increments_count_up_within_one_window_and_report_its_end(clock: Clock) -> None:
    counters = MemoryCounters()

    counts = [counters.incr("client", 60) for _ in range(3)]

    assert counts == [1, 2, 3]
    assert counters.get("client") == 3
    assert counters.get_expiry("client") == clock.now + 60


def test_a_window_that_has_ended_starts_again_from_one_at_the_next_increment(clock: Clock) -> None:
    counters = MemoryCounters()
    counters.incr("client", 60)
    counters.incr("client", 60)

    clock.advance(60)

    assert counters.get("client") == 0
    assert counters.get_expiry("client") == clock.now
    assert counters.incr("client", 60) == 1
    assert counters.get_expiry("client") == clock.now + 60


def test_keys_count_apart(clock: Clock) -> None:
    counters = MemoryCounters()

    counters.incr("a", 60)
    counters.incr("a", 60)
    counters.incr("b", 60)

    assert (counters.get("a"), counters.get("b")) == (2, 1)


def test_ended_windows_are_swept_so_the_table_holds_only_open_ones(clock: Clock) -> None:
    counters = MemoryCounters()
    for client in range(100):
        counters.incr(f"client-{client}", 1)
    counters.incr("long", 3600)

    clock.advance(max(SWEEP_INTERVAL_S, 1) + 0.1)
    counters.incr("another", 1)

    assert len(counters) == 2
    assert counters.get("long") == 1


def test_clear_and_reset_forget_counts(clock: Clock) -> None:
    counters = MemoryCounters()
    counters.incr("a", 60)
    counters.incr("b", 60)

    counters.clear("a")
    assert counters.get("a") == 0
    assert counters.get("b") == 1
    assert counters.reset() == 1
    assert len(counters) == 0


def test_threads_counting_one_key_lose_no_increment() -> None:
    counters = MemoryCounters()

    def count() -> None:
        for _ in range(2_000):
            counters.incr("shared", 3600)

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert counters.get("shared") == 8_000
