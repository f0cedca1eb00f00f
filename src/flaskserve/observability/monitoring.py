"""Model monitoring in one app: the inference log and drift, fed from the prediction edge.

A Flask extension: ``Monitoring().init_app(app, settings, registry, metrics)``.
The prediction edge calls :func:`observe_prediction` once per request with the
validated matrix and the answers, which hands them to the drift monitor (it
counts them later, in bulk, off the request) and keeps them for the log record;
an ``after_request`` hook then queues the record with the status and latency the
client gets, on every prediction route (a request that failed after its model
was resolved is logged too, without outputs). Nothing is done for routes that
predict nothing.

Which URL a model's records go to and how they are sampled and redacted are
per-model settings (``inference_log``, ``log_sample_rate``, ``log_redact``) over
the server-wide ``inference_log``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy.typing as npt
from flask import Flask, Response, current_app, g
from prometheus_client import Counter

from flaskserve.models.registry import ModelRegistry
from flaskserve.models.served import ServedModel
from flaskserve.observability.context import RequestNotes, current_request_id, notes
from flaskserve.observability.drift.monitor import FLUSH_INTERVAL_S, DriftMonitor
from flaskserve.observability.drift.window import DriftWindow, RowSlots, SharedRowCounter, Slots, TimeSlots
from flaskserve.observability.inference_log.record import RequestFacts
from flaskserve.observability.inference_log.sinks import check_url, sink_factory
from flaskserve.observability.inference_log.writer import DROP_REASONS, LogWriter
from flaskserve.observability.metrics import Metrics
from flaskserve.observability.tracker import started_at
from flaskserve.settings import ModelSettings, Settings

__all__ = ["EXTENSION_KEY", "Exchange", "Monitoring", "get_monitoring", "observe_prediction", "queue_record"]

EXTENSION_KEY = "flaskserve.monitoring"
_EXCHANGE_KEY = "flaskserve_exchange"

#: A prediction as its log record keeps it: the model, the validated matrix and the answers by method.
Exchange = tuple[ServedModel, Any, Mapping[str, Any]]


@dataclass
class _State:
    settings: Settings
    drift: DriftMonitor
    writers: dict[str, LogWriter] = field(default_factory=dict)
    dropped: Counter | None = None
    written: Counter | None = None
    #: The settings of a model the configuration does not name, made once: a pydantic model
    #: validated per request would cost a request more than its whole log record.
    unconfigured: ModelSettings = field(default_factory=ModelSettings)

    @property
    def logs(self) -> bool:
        """Whether any model's records go anywhere (the server-wide log or a model's own)."""
        return self.dropped is not None

    def model_settings(self, name: str) -> ModelSettings:
        """The configured settings of model ``name``, for a request that failed before it was resolved."""
        return self.settings.models.get(name) or self.unconfigured

    def writer(self, url: str) -> LogWriter:
        found = self.writers.get(url)
        if found is None:
            dropped, written = self.dropped, self.written
            assert dropped is not None
            assert written is not None
            # Each reason's child looked up once: a request that finds the queue full only counts.
            by_reason = {reason: dropped.labels(reason) for reason in DROP_REASONS}
            found = self.writers[url] = LogWriter(
                sink_factory(url),
                dropped=lambda reason, count: by_reason[reason].inc(count),
                written=written.inc,
                queue_size=self.settings.inference_log_queue_size,
                flush_interval_s=self.settings.inference_log_flush_s,
            )
        return found

    def observe(
        self, model: ServedModel, matrix: npt.NDArray[Any], results: Mapping[str, Any]
    ) -> Exchange | None:
        """Count a prediction into the drift window; what to keep for its log record, if there is a log."""
        self.drift.observe(model, matrix, results)
        return (model, matrix, results) if self.logs else None


class Monitoring:
    """The inference log and the drift monitor of one app."""

    def init_app(self, app: Flask, settings: Settings, registry: ModelRegistry, metrics: Metrics) -> None:
        slots: Slots = (
            TimeSlots(settings.drift_window_s)
            if settings.drift_window_rows is None
            else RowSlots(settings.drift_window_rows, SharedRowCounter(metrics.multiprocess_dir))
        )
        window = DriftWindow(slots, multiprocess_dir=metrics.multiprocess_dir)
        counted = Counter(
            "flaskserve_drift_rows_counted",
            "Served rows counted into the drift window (each worker counts the rows it holds at least "
            f"every {FLUSH_INTERVAL_S:g} s).",
            registry=metrics.registry,
        )
        dropped = Counter(
            "flaskserve_drift_rows_dropped",
            "Served rows left out of the drift window: the worker held too many rows not yet counted.",
            registry=metrics.registry,
        )
        drift = DriftMonitor(registry, window, counted=counted.inc, dropped=dropped.inc)
        state = _State(settings=settings, drift=drift)
        urls = {settings.inference_log} | {m.inference_log for m in settings.models.values()}
        urls.discard(None)
        for url in urls:
            assert url is not None
            check_url(url)
        if urls:
            state.dropped = Counter(
                "flaskserve_inference_log_dropped",
                "Inference log records dropped: the worker's queue was full, or the sink failed.",
                ["reason"],
                registry=metrics.registry,
            )
            for reason in DROP_REASONS:
                # Present at 0 from the start, so that an alert on its rate sees the first drop.
                state.dropped.labels(reason)
            state.written = Counter(
                "flaskserve_inference_log_written",
                "Inference log records written to their sink.",
                registry=metrics.registry,
            )
            app.after_request(_queue_record)
        app.extensions[EXTENSION_KEY] = state

    @staticmethod
    def flush(app: Flask) -> None:
        """Count the rows held for drift, write what this process has queued and stop its writers.

        Also done at a normal exit.
        """
        state = get_monitoring(app)
        state.drift.flush()
        for writer in state.writers.values():
            writer.close()


def get_monitoring(app: Any) -> _State:
    state: _State = app.extensions[EXTENSION_KEY]
    return state


def observe_prediction(model: ServedModel, matrix: npt.NDArray[Any], results: Mapping[str, Any]) -> None:
    """Count a prediction into the drift window and keep it for the request's log record."""
    state: _State | None = current_app.extensions.get(EXTENSION_KEY)
    if state is None:
        return
    exchange = state.observe(model, matrix, results)
    if exchange is not None:
        setattr(g, _EXCHANGE_KEY, exchange)


def _queue_record(response: Response) -> Response:
    queue_record(
        get_monitoring(current_app),
        notes(),
        g.get(_EXCHANGE_KEY),
        status=response.status_code,
        started=started_at(),
        request_id=current_request_id() or "",
        key_name=g.get("api_key_name"),
    )
    return response


def queue_record(
    state: _State,
    said: RequestNotes,
    exchange: Exchange | None,
    *,
    status: int,
    started: float | None,
    request_id: str,
    key_name: str | None,
) -> None:
    """Queue the log record of a prediction request, answered with ``status``, if its model is logged.

    Framework-free: the Flask hook and the prediction lane pass what they know of the request.
    The request pays for the sampling draw and a hand-over of its facts; the writer's
    thread builds the record (:meth:`RequestFacts.record`) and serialises it.
    """
    if not state.logs or said.model is None or said.protocol is None:
        return
    if exchange is None:
        model_settings = state.model_settings(said.model)
        feature_names: tuple[str, ...] = ()
        inputs = outputs = None
    else:
        model, inputs, outputs = exchange
        model_settings = model.settings
        feature_names = model.signature.feature_names
    url = model_settings.inference_log or state.settings.inference_log
    rate = model_settings.log_sample_rate
    if url is None or (rate < 1.0 and random.random() >= rate):
        return
    state.writer(url).submit(
        RequestFacts(
            time.time(),
            time.perf_counter(),
            started,
            request_id,
            said.model,
            said.version,
            said.protocol,
            said.method,
            status,
            key_name,
            feature_names,
            inputs,
            outputs,
            model_settings.log_redact,
        )
    )
