"""The hot path: call a served model on a validated matrix, isolating its failures.

Everything here takes plain arguments (a model, a method name, a matrix) so that
any protocol, the batcher and the cache compose around the same call. A model
that raises fails only the request(s) it was called for: the exception is
logged with an error id, and the client receives that id, never the traceback.

For each (model version, method) the service composes, lazily and in the
process that serves (never before a fork), one route::

    cache lookup  ->  batcher  ->  isolated call  ->  kernel or estimator

A cache hit answers without queueing; a miss joins the batch, and its own
slice of the answer is stored. Each stage is skipped when its setting turns it
off. Settings come from the model's own settings, else the server-wide ones.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from flaskserve.errors import FlaskserveError, LimitExceeded, PredictionFailed
from flaskserve.inference.batcher import Batcher, Occupancy
from flaskserve.inference.cache import KeyMaker, PredictionCache
from flaskserve.inference.clock import Clock, SystemClock
from flaskserve.inference.observer import InferenceObserver, NullObserver
from flaskserve.models.served import Kernel, Matrix, ServedModel

log = logging.getLogger("flaskserve.inference")


@dataclass(frozen=True)
class Prediction:
    """A model's answer for the rows of one request."""

    values: npt.NDArray[Any]
    #: True or False when the prediction cache was asked; None when this route has no cache.
    cache_hit: bool | None = None
    #: Rows in the model call that produced this answer (more than the request's when batched).
    batch_rows: int = 0


def call_isolated(
    model: ServedModel,
    method: str,
    matrix: npt.NDArray[Any],
    observer: InferenceObserver | None = None,
    function: Kernel | None = None,
) -> npt.NDArray[Any]:
    """Call the model; turn any exception it raises into a :class:`PredictionFailed` with an error id.

    ``function`` computes the method in place of ``model.call``: the verified kernel the model carries.
    """
    started = time.perf_counter()
    try:
        values = function(matrix) if function is not None else model.call(method, matrix)
    except FlaskserveError:
        raise
    except Exception:
        error_id = uuid.uuid4().hex[:16]
        log.exception(
            "model raised",
            extra={"error_id": error_id, "model": model.name, "version": model.version, "method": method},
        )
        raise PredictionFailed(
            f"model '{model.name}' failed on this input (error id {error_id})", error_id=error_id
        ) from None
    finally:
        if observer is not None:
            observer.model_called(
                model.name, model.version, method, int(matrix.shape[0]), time.perf_counter() - started
            )
    if values.ndim == 0 or values.shape[0] != matrix.shape[0]:
        error_id = uuid.uuid4().hex[:16]
        log.error(
            "model returned a wrong number of rows",
            extra={"error_id": error_id, "model": model.name, "rows_in": matrix.shape[0]},
        )
        raise PredictionFailed(
            f"model '{model.name}' returned an answer of the wrong length (error id {error_id})",
            error_id=error_id,
        )
    return values


class InferenceService:
    """Runs predictions for every protocol; one per app.

    The server-wide batching and cache settings apply to every model whose own
    settings do not override them. ``clock`` drives batch delays and cache
    expiry; ``occupancy`` (requests inside the process, counted at the WSGI
    edge) lets a batch leader stop waiting when no one else can join.
    """

    def __init__(
        self,
        *,
        max_rows: int,
        observer: InferenceObserver | None = None,
        max_batch_size: int = 1,
        max_batch_delay_ms: float = 0.0,
        cache_size: int = 0,
        cache_max_bytes: int | None = None,
        cache_ttl_s: float | None = None,
        clock: Clock | None = None,
        occupancy: Occupancy | None = None,
    ) -> None:
        self.max_rows = max_rows
        self.observer: InferenceObserver = observer or NullObserver()
        self.max_batch_size = max_batch_size
        self.max_batch_delay_ms = max_batch_delay_ms
        self.cache_size = cache_size
        self.cache_max_bytes = cache_max_bytes
        self.cache_ttl_s = cache_ttl_s
        self.clock: Clock = clock or SystemClock()
        self.occupancy = occupancy
        self._routes: dict[tuple[str, str, str], _Route] = {}
        self._caches: dict[tuple[str, str], tuple[ServedModel, PredictionCache | None]] = {}
        self._building = threading.Lock()

    def predict(self, model: ServedModel, method: str, matrix: npt.NDArray[Any]) -> Prediction:
        model.check_method(method)
        rows = int(matrix.shape[0])
        if rows > self.max_rows:
            raise LimitExceeded(
                f"the request has {rows} rows; at most {self.max_rows} are accepted per request"
            )
        route = self._routes.get((model.name, model.version, method))
        if route is None or route.model is not model:
            route = self._build_route(model, method)
        return route.predict(matrix)

    def batch_settings(self, model: ServedModel) -> tuple[int, float]:
        """``(max_batch_size, max_batch_delay_ms)`` in force for ``model``."""
        own = model.settings
        size = own.max_batch_size if own.max_batch_size is not None else self.max_batch_size
        delay = own.max_batch_delay_ms if own.max_batch_delay_ms is not None else self.max_batch_delay_ms
        return size, delay

    def cache_entries(self, model: ServedModel) -> int:
        """Cache entries in force for ``model``; 0 when its cache is off."""
        own = model.settings.cache_size
        return own if own is not None else self.cache_size

    def forget(self, name: str) -> None:
        """Drop the routes and caches of every version of model ``name`` (it was unloaded or reloaded).

        Without this, the routes of an unloaded model would keep its estimator in memory;
        requests already holding a route finish with it.
        """
        with self._building:
            self._routes = {key: route for key, route in self._routes.items() if key[0] != name}
            self._caches = {key: held for key, held in self._caches.items() if key[0] != name}

    # -- composing routes, once per (model version, method) in each process --------------

    def _build_route(self, model: ServedModel, method: str) -> _Route:
        with self._building:
            key = (model.name, model.version, method)
            route = self._routes.get(key)
            if route is not None and route.model is model:
                return route
            kernel = model.kernel(method)
            observer = self._current_observer

            def call(matrix: Matrix) -> Matrix:
                return call_isolated(model, method, matrix, observer(), kernel)

            batcher = None
            size, delay_ms = self.batch_settings(model)
            if size > 1:

                def batch_formed(rows: int, requests: int, waited: float) -> None:
                    observer().batch_formed(model.name, model.version, rows, requests, waited)

                batcher = Batcher(
                    call,
                    max_rows=size,
                    max_delay_s=delay_ms / 1000.0,
                    clock=self.clock,
                    occupancy=self.occupancy,
                    on_batch=batch_formed,
                )
            cache = self._cache_for(model)
            keys = KeyMaker(model.name, model.version, model.sha256, method) if cache is not None else None
            route = _Route(model, call, batcher, cache, keys, observer)
            self._routes = {**self._routes, key: route}
            return route

    def _cache_for(self, model: ServedModel) -> PredictionCache | None:
        """One cache per model version, shared by its methods (keys name the method)."""
        held = self._caches.get((model.name, model.version))
        if held is not None and held[0] is model:
            return held[1]
        entries = self.cache_entries(model)
        cache = (
            PredictionCache(entries, max_bytes=self.cache_max_bytes, ttl_s=self.cache_ttl_s, clock=self.clock)
            if entries > 0
            else None
        )
        self._caches[(model.name, model.version)] = (model, cache)
        return cache

    def _current_observer(self) -> InferenceObserver:
        # Read at call time: the metrics layer may attach its observer after the app is built.
        return self.observer


class _Route:
    """The composed stages for one (model version, method)."""

    __slots__ = ("batcher", "cache", "call", "keys", "model", "observer")

    def __init__(
        self,
        model: ServedModel,
        call: Callable[[Matrix], Matrix],
        batcher: Batcher | None,
        cache: PredictionCache | None,
        keys: KeyMaker | None,
        observer: Callable[[], InferenceObserver],
    ) -> None:
        self.model = model
        self.call = call
        self.batcher = batcher
        self.cache = cache
        self.keys = keys
        self.observer = observer

    def predict(self, matrix: Matrix) -> Prediction:
        cache, key = self.cache, b""
        if cache is not None and self.keys is not None:
            key = self.keys.key(matrix)
            cached = cache.get(key)
            self.observer().cache_lookup(self.model.name, self.model.version, cached is not None)
            if cached is not None:
                return Prediction(values=cached, cache_hit=True, batch_rows=0)
        if self.batcher is not None:
            result = self.batcher.submit(matrix)
            values, batch_rows = result.values, result.batch_rows
        else:
            values, batch_rows = self.call(matrix), int(matrix.shape[0])
        if cache is not None:
            cache.put(key, values)
            return Prediction(values=values, cache_hit=False, batch_rows=batch_rows)
        return Prediction(values=values, batch_rows=batch_rows)
