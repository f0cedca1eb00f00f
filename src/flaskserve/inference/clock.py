"""Time as the hot path sees it: a monotonic reading and a bounded wait.

The batcher and the cache never call :mod:`time` directly; they take a
:class:`Clock`, so tests pass a manual one (``flaskserve.testing.ManualClock``)
and drive time by hand instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""

    def wait(self, condition: threading.Condition, timeout: float) -> None:
        """Wait on ``condition`` (held by the caller) until it is notified or ``timeout`` seconds pass.

        Like :meth:`threading.Condition.wait`, it may return early; callers re-check their predicate.
        """


class SystemClock:
    """The real clock: :func:`time.monotonic` and :meth:`threading.Condition.wait`."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, condition: threading.Condition, timeout: float) -> None:
        condition.wait(timeout)
