"""What the hot path reports as it runs, for metrics to count.

The core knows nothing of Prometheus: it calls an observer, and the metrics
layer supplies one. Tests pass a recording fake; the default does nothing.
"""

from __future__ import annotations

from typing import Protocol


class InferenceObserver(Protocol):
    def model_called(self, model: str, version: str, method: str, rows: int, seconds: float) -> None:
        """One call into the estimator finished (successfully or not)."""

    def batch_formed(self, model: str, version: str, rows: int, requests: int, queue_wait_s: float) -> None:
        """The batcher merged ``requests`` requests into one call of ``rows`` rows."""

    def cache_lookup(self, model: str, version: str, hit: bool) -> None:
        """The prediction cache was consulted."""


class NullObserver:
    def model_called(self, model: str, version: str, method: str, rows: int, seconds: float) -> None:
        pass

    def batch_formed(self, model: str, version: str, rows: int, requests: int, queue_wait_s: float) -> None:
        pass

    def cache_lookup(self, model: str, version: str, hit: bool) -> None:
        pass
