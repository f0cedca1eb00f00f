"""A few live figures per model, read from the metrics, for the playground's model cards.

The figures are computed from the same metric families ``/metrics`` exposes
(summed over every worker under ``flaskserve serve``), so a card and a
Prometheus scrape never disagree. All figures count since the server started;
the page charts their change between two readings.

- ``requests``: requests answered for the model, any protocol and status;
- ``client_errors`` / ``server_errors``: those answered 4xx / 5xx;
- ``p50_ms`` / ``p99_ms``: request latency quantiles, interpolated within the
  histogram's buckets as Prometheus' ``histogram_quantile`` does (``None`` before
  the first request);
- ``cache_hits`` / ``cache_misses`` and ``cache_hit_ratio`` (``None`` without lookups).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import Metric

__all__ = ["ModelFigures", "model_figures", "quantile"]

_REQUESTS = "flaskserve_requests_total"
_DURATION_BUCKET = "flaskserve_request_duration_seconds_bucket"
_CACHE = "flaskserve_cache_lookups_total"


@dataclass
class ModelFigures:
    requests: float = 0.0
    client_errors: float = 0.0
    server_errors: float = 0.0
    cache_hits: float = 0.0
    cache_misses: float = 0.0
    #: Cumulative request counts by upper bound (seconds), summed over protocols.
    buckets: dict[float, float] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        lookups = self.cache_hits + self.cache_misses
        p50, p99 = quantile(self.buckets, 0.5), quantile(self.buckets, 0.99)
        return {
            "requests": self.requests,
            "client_errors": self.client_errors,
            "server_errors": self.server_errors,
            "p50_ms": None if p50 is None else round(p50 * 1000, 3),
            "p99_ms": None if p99 is None else round(p99 * 1000, 3),
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "cache_hit_ratio": self.cache_hits / lookups if lookups else None,
        }


def model_figures(families: Iterable[Metric], models: Iterable[str]) -> dict[str, ModelFigures]:
    """The figures of each model in ``models``, from metric families; other label values are ignored."""
    figures = {name: ModelFigures() for name in models}
    for family in families:
        for sample in family.samples:
            target = figures.get(sample.labels.get("model", ""))
            if target is None:
                continue
            if sample.name == _REQUESTS:
                status = int(sample.labels.get("status", "0") or 0)
                target.requests += sample.value
                if 400 <= status < 500:
                    target.client_errors += sample.value
                elif status >= 500:
                    target.server_errors += sample.value
            elif sample.name == _DURATION_BUCKET:
                bound = float(sample.labels["le"])
                target.buckets[bound] = target.buckets.get(bound, 0.0) + sample.value
            elif sample.name == _CACHE:
                if sample.labels.get("result") == "hit":
                    target.cache_hits += sample.value
                else:
                    target.cache_misses += sample.value
    return figures


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """The ``q`` quantile of a cumulative histogram, linear within a bucket; ``None`` when it is empty.

    An answer in the last (``+Inf``) bucket is reported as the highest finite bound,
    as Prometheus does: the histogram cannot say more.
    """
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound
