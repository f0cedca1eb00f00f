"""Prometheus metrics of one app, summed over every gunicorn worker when served by ``flaskserve serve``.

Every metric object is created by :class:`Metrics` in a registry the app owns,
never in ``prometheus_client``'s global one, so two apps in one process (every
test) count separately and importing this module registers nothing.

Under gunicorn each worker is a process with its own counters. When the
``PROMETHEUS_MULTIPROC_DIR`` environment variable names a directory (``flaskserve
serve`` creates one before the app is built), ``prometheus_client`` keeps every
value in a file per process there, and a scrape reads them all: ``/metrics``
then reports the sum over workers, whichever worker answers. In-process (tests,
``flask run``) the app's own registry is read directly.

Label values are bounded: the tracker only passes model names and versions found
in the model registry, methods the model offers, and numeric status codes, so a
client cannot create series by inventing names.

Metric names and labels (all prefixed ``flaskserve_``):

=====================================  =========  ==========================================
name                                   type       labels
=====================================  =========  ==========================================
requests_total                         counter    model, version, protocol, method, status
request_duration_seconds               histogram  model, protocol
requests_in_flight                     gauge      (none; live workers only)
model_inference_seconds                histogram  model, version, method
batch_rows                             histogram  model, version
batch_requests                         histogram  model, version
batch_queue_wait_seconds               histogram  model, version
cache_lookups_total                    counter    model, version, result (hit, miss)
cache_storage_errors_total             counter    operation (get, put, decode)
model_loads_total                      counter    model, version
model_load_failures_total              counter    model, version
model_load_seconds                     histogram  model
models_loaded                          gauge      (none; read from the answering worker)
model_state                            gauge      model, version, state
rate_limited_total                     counter    model
auth_refused_total                     counter    reason (unauthorized, forbidden)
inference_log_written_total            counter    (none; with an inference log)
inference_log_dropped_total            counter    reason (queue_full, sink_error)
feature_drift_psi, _ks, _js            gauge      model, version, role, feature
feature_out_of_range_ratio             gauge      model, version, role, feature
feature_missing_ratio                  gauge      model, version, role, feature
drift_window_rows                      gauge      model, version
drift_rows_counted_total               counter    (none)
drift_rows_dropped_total               counter    (none)
=====================================  =========  ==========================================

The inference log's and drift's counters are made by :mod:`flaskserve.observability.monitoring`
in this registry; the drift gauges are computed at scrape time by
:mod:`flaskserve.observability.drift.monitor` from counts kept under
:data:`INTERNAL_PREFIX`, which are never exposed themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from flaskserve.models.registry import ModelRegistry, ModelState

__all__ = ["CONTENT_TYPE", "INTERNAL_PREFIX", "Metrics", "ModelStateCollector"]

#: The media type of the Prometheus text format that :meth:`Metrics.exposition` returns.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

_PREFIX = "flaskserve"
#: Metrics kept in the multiprocess files only for another collector to read, never exposed as they are.
INTERNAL_PREFIX = f"{_PREFIX}_internal_"

# Model servers answer in about a millisecond (a cached or tiny model) to seconds
# (a large batch on a forest); the buckets span that range in roughly 2.5x steps.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A batch waits at most ``max_batch_delay_ms`` (2 ms by default), so the queue wait is finer.
QUEUE_WAIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

#: Statuses counted as refused by authentication, with the reason label they get.
_AUTH_REASONS = {401: "unauthorized", 403: "forbidden"}


class Metrics:
    """The metrics of one app; also the hot path's :class:`~flaskserve.inference.observer.InferenceObserver`.

    ``multiprocess_dir`` is the directory ``prometheus_client`` writes per-process
    files to; give it exactly when the metrics are built inside
    :func:`~flaskserve.observability.multiprocess.metrics_directory` (or
    ``PROMETHEUS_MULTIPROC_DIR`` was set before ``prometheus_client`` was first
    imported), as the values' storage is chosen when each metric is created.
    """

    def __init__(self, *, multiprocess_dir: str | None = None) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess_dir = multiprocess_dir
        self._request_children: dict[tuple[str, str, str, str, int], tuple[Any, Any]] = {}
        self._lookup_children: dict[tuple[str, str, bool], Any] = {}
        registry = self.registry

        self.requests = Counter(
            f"{_PREFIX}_requests",
            "Requests answered, by model, version, protocol, model method and HTTP status.",
            ["model", "version", "protocol", "method", "status"],
            registry=registry,
        )
        self.request_duration = Histogram(
            f"{_PREFIX}_request_duration_seconds",
            "Time from the request reaching flaskserve to its response being ready.",
            ["model", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            f"{_PREFIX}_requests_in_flight",
            "Requests being handled right now, over all live workers.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.inference = Histogram(
            f"{_PREFIX}_model_inference_seconds",
            "Time spent inside the model's method, per call (a batched call counts once).",
            ["model", "version", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_rows = Histogram(
            f"{_PREFIX}_batch_rows",
            "Rows in one batched model call.",
            ["model", "version"],
            buckets=SIZE_BUCKETS,
            registry=registry,
        )
        self.batch_requests = Histogram(
            f"{_PREFIX}_batch_requests",
            "Requests merged into one batched model call.",
            ["model", "version"],
            buckets=SIZE_BUCKETS,
            registry=registry,
        )
        self.batch_queue_wait = Histogram(
            f"{_PREFIX}_batch_queue_wait_seconds",
            "Time a batch's requests waited for others to join it.",
            ["model", "version"],
            buckets=QUEUE_WAIT_BUCKETS,
            registry=registry,
        )
        self.cache_lookups = Counter(
            f"{_PREFIX}_cache_lookups",
            "Prediction cache lookups, by result (hit or miss).",
            ["model", "version", "result"],
            registry=registry,
        )
        self.cache_storage_errors = Counter(
            f"{_PREFIX}_cache_storage_errors",
            "Calls to the shared prediction cache that failed or timed out, and entries that did not decode.",
            ["operation"],
            registry=registry,
        )
        self.model_loads = Counter(
            f"{_PREFIX}_model_loads",
            "Model versions loaded successfully.",
            ["model", "version"],
            registry=registry,
        )
        self.model_load_failures = Counter(
            f"{_PREFIX}_model_load_failures",
            "Model versions that failed to load.",
            ["model", "version"],
            registry=registry,
        )
        self.model_load_duration = Histogram(
            f"{_PREFIX}_model_load_seconds",
            "Time to load, check and warm up one model version; importing its framework is not counted.",
            ["model"],
            buckets=LOAD_BUCKETS,
            registry=registry,
        )
        self.rate_limited = Counter(
            f"{_PREFIX}_rate_limited",
            "Requests refused with 429 by a rate limit.",
            ["model"],
            registry=registry,
        )
        self.auth_refused = Counter(
            f"{_PREFIX}_auth_refused",
            "Requests refused by authentication (401) or for lack of scope (403).",
            ["reason"],
            registry=registry,
        )

    # -- the hot path (InferenceObserver) ----------------------------------------

    def model_called(self, model: str, version: str, method: str, rows: int, seconds: float) -> None:
        self.inference.labels(model, version, method).observe(seconds)

    def batch_formed(self, model: str, version: str, rows: int, requests: int, queue_wait_s: float) -> None:
        self.batch_rows.labels(model, version).observe(rows)
        self.batch_requests.labels(model, version).observe(requests)
        self.batch_queue_wait.labels(model, version).observe(queue_wait_s)

    def cache_lookup(self, model: str, version: str, hit: bool) -> None:
        key = (model, version, hit)
        child = self._lookup_children.get(key)
        if child is None:
            # Kept as the request metrics' are: a cache hit is one of the cheapest requests there is.
            child = self._lookup_children[key] = self.cache_lookups.labels(
                model, version, "hit" if hit else "miss"
            )
        child.inc()

    def cache_storage_failed(self, operation: str) -> None:
        self.cache_storage_errors.labels(operation).inc()

    # -- model loading (LoadObserver) -----------------------------------------------

    def model_loaded(self, model: str, version: str, seconds: float) -> None:
        self.model_loads.labels(model, version).inc()
        self.model_load_duration.labels(model).observe(seconds)

    def model_load_failed(self, model: str, version: str) -> None:
        self.model_load_failures.labels(model, version).inc()

    # -- requests -------------------------------------------------------------------

    def request_started(self) -> None:
        self.in_flight.inc()

    def request_ended(self) -> None:
        self.in_flight.dec()

    def request_answered(
        self, *, model: str, version: str, protocol: str, method: str, status: int, seconds: float
    ) -> None:
        """Count one answered request; labels must already be bounded (see the tracker)."""
        key = (model, version, protocol, method, status)
        children = self._request_children.get(key)
        if children is None:
            # prometheus_client validates and locks on every labels() call; the same few
            # label sets recur on every request, so their children are kept.
            children = (
                self.requests.labels(model, version, protocol, method, str(status)),
                self.request_duration.labels(model, protocol),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if status == 429:
            self.rate_limited.labels(model).inc()
        reason = _AUTH_REASONS.get(status)
        if reason is not None:
            self.auth_refused.labels(reason).inc()

    # -- exposition -------------------------------------------------------------------

    def exposition(self, *extra: Collector) -> bytes:
        """The metrics in the Prometheus text format, with ``extra`` collectors read at scrape time.

        In multiprocess mode the values come from every process's files, not from
        this process's registry, which holds only its own share.
        """
        return generate_latest(_Combined([self._source(), *extra]))

    def families(self) -> list[Metric]:
        """Every metric as :meth:`exposition` reads it (summed over workers), for pages that chart them."""
        return list(self._source().collect())

    def _source(self) -> _Collects:
        if self.multiprocess_dir is not None:
            files = MultiProcessCollector(None, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
            return _Exposed(files)
        return self.registry


class ModelStateCollector(Collector):
    """The state of every configured model version, read from the model registry at scrape time.

    These are facts about the answering process rather than counts to sum, so they
    are not stored in the multiprocess files; every worker holds the same models,
    loaded before the fork.
    """

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        entries = self._registry.entries()
        loaded = GaugeMetricFamily(f"{_PREFIX}_models_loaded", "Model versions loaded and ready to serve.")
        loaded.add_metric([], sum(1 for entry in entries if entry.state is ModelState.READY))
        state = GaugeMetricFamily(
            f"{_PREFIX}_model_state",
            "1 for the state each configured model version is in (READY, LOADING, UNAVAILABLE, ...).",
            labels=["model", "version", "state"],
        )
        for entry in entries:
            for candidate in ModelState:
                state.add_metric(
                    [entry.name, entry.version, candidate.value], 1.0 if entry.state is candidate else 0.0
                )
        yield loaded
        yield state


class _Collects(Protocol):
    def collect(self) -> Iterable[Metric]: ...


class _Exposed(Collector):
    """A collector's families but the internal ones."""

    def __init__(self, collector: _Collects) -> None:
        self._collector = collector

    def collect(self) -> Iterator[Metric]:
        return (m for m in self._collector.collect() if not m.name.startswith(INTERNAL_PREFIX))


class _Combined(Collector):
    """Several collectors read as one, for one exposition."""

    def __init__(self, collectors: Iterable[_Collects]) -> None:
        self._collectors = list(collectors)

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()
