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

With ``predict_timeout_s`` on, the isolated call runs on a thread of a
:class:`TimedCalls` pool and the request waits for it at most that long, then
fails with :class:`~flaskserve.errors.PredictionTimeout` (504). Python cannot
stop a thread, so the call that hangs keeps its thread until it returns; once
``max_stuck`` calls hang at once, the process asks to be replaced (``retire``).
"""

from __future__ import annotations

import _thread
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from flaskserve.errors import FlaskserveError, LimitExceeded, PredictionFailed, PredictionTimeout
from flaskserve.inference.batcher import Batcher, Occupancy
from flaskserve.inference.cache import AnswerCache, KeyMaker, PredictionCache
from flaskserve.inference.clock import Clock, SystemClock
from flaskserve.inference.observer import InferenceObserver, NullObserver
from flaskserve.inference.replay import Replay
from flaskserve.inference.shared_cache import SharedTier, TieredCache
from flaskserve.models.explain import EXPLAIN
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
    #: The cache key the answer is stored under, when the cache holds it (``values`` is then its copy).
    cache_key: bytes | None = None


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


#: Seconds a process serves before stuck calls make it ask to be replaced (see :class:`TimedCalls`).
RETIRE_AFTER_S = 6.0


class TimedCalls:
    """Runs calls on threads of its own, so that a caller can stop waiting for one that hangs.

    A call takes an idle thread of the pool, or starts one when none is idle, and
    its caller waits for the answer at most ``timeout_s``. A thread whose call is
    past its time is *stuck*: it is not idle, so it never delays another call, and
    it serves again once its call returns. The threads are daemons, so a stuck one
    never keeps its process from exiting. When ``max_stuck`` calls are stuck at
    once, ``retire`` is called, once: only the process's exit frees those threads.
    It is called no sooner than ``retire_after_s`` after the pool's first call in
    its process, so that a model that hangs on every call cannot make the server
    replace a worker every second.

    Threads are started in the process that calls, never before a ``fork``; a
    pool inherited across one starts afresh (the parent's threads are not in the child).
    """

    def __init__(
        self, max_stuck: int, retire: Callable[[], None], retire_after_s: float = RETIRE_AFTER_S
    ) -> None:
        self.max_stuck = max_stuck
        self.retire_after_s = retire_after_s
        self._retire = retire
        self._lock = threading.Lock()
        self._idle: list[_Runner] = []
        self._pid = os.getpid()
        self._started = time.monotonic()
        self._stuck = 0
        self._retired = False

    @property
    def stuck(self) -> int:
        """Calls past their time that have not returned yet."""
        return self._stuck

    def bounded(
        self, function: Callable[[Matrix], Matrix], timeout_s: float, name: str
    ) -> Callable[[Matrix], Matrix]:
        """``function``, run by this pool with ``timeout_s`` as its limit; ``name`` is the model's."""

        def call(matrix: Matrix) -> Matrix:
            return self.run(function, matrix, timeout_s, name)

        return call

    def run(
        self, function: Callable[[Matrix], Matrix], matrix: Matrix, timeout_s: float, name: str
    ) -> Matrix:
        """``function(matrix)``, or :class:`PredictionTimeout` once it has taken ``timeout_s``."""
        job = _Job(function, matrix)
        if self._pid != os.getpid():
            self._after_fork()
        try:
            runner = self._idle.pop()
        except IndexError:
            runner = _Runner(self)
        runner.start(job)
        if not job.done.acquire(timeout=timeout_s) and not self._abandon(job):
            raise self._timed_out(name, timeout_s)
        if job.error is not None:
            raise job.error
        return job.value

    def _abandon(self, job: _Job) -> bool:
        """Give up on ``job``; ``True`` if it finished meanwhile after all (its answer is then ready)."""
        with self._lock:
            if job.finished:
                finished = True
            else:
                finished, job.abandoned = False, True
                self._stuck += 1
                retire = self._stuck >= self.max_stuck and not self._retired
                self._retired = self._retired or retire
        if finished:
            job.done.acquire()
            return True
        if retire:
            delay = self.retire_after_s - (time.monotonic() - self._started)
            if delay > 0:
                timer = threading.Timer(delay, self._retire)
                timer.daemon = True
                timer.start()
            else:
                self._retire()
        return False

    def _timed_out(self, name: str, timeout_s: float) -> PredictionTimeout:
        error_id = uuid.uuid4().hex[:16]
        log.error(
            "model did not answer in time; its call goes on in the background",
            extra={"error_id": error_id, "model": name, "timeout_s": timeout_s, "stuck_calls": self._stuck},
        )
        return PredictionTimeout(
            f"model '{name}' did not answer within {timeout_s:g} s (error id {error_id})", error_id=error_id
        )

    def _finished(self, runner: _Runner, job: _Job) -> None:
        """Called by a runner's thread when its call returned: hand the answer over, become idle."""
        with self._lock:
            job.finished = True
            late = job.abandoned
            if late:
                self._stuck -= 1
        # Idle before the caller wakes: its next call takes this thread instead of starting one.
        self._idle.append(runner)
        if late:
            log.warning("a model call that had timed out returned", extra={"stuck_calls": self._stuck})
        else:
            job.done.release()

    def _after_fork(self) -> None:
        # A new lock: the parent's may have been held by a thread that does not exist here.
        self._lock = threading.Lock()
        self._idle, self._stuck, self._retired = [], 0, False
        self._pid, self._started = os.getpid(), time.monotonic()


class _Job:
    """One call handed to a runner: the function, its argument, and later its answer."""

    __slots__ = ("abandoned", "done", "error", "finished", "function", "matrix", "value")

    def __init__(self, function: Callable[[Matrix], Matrix], matrix: Matrix) -> None:
        self.function = function
        self.matrix = matrix
        #: Held until the answer is in; its holder (the caller) waits on it.
        self.done = _thread.allocate_lock()
        self.done.acquire()
        self.value: Matrix = matrix
        self.error: BaseException | None = None
        self.finished = False
        self.abandoned = False


class _Runner:
    """A daemon thread of a :class:`TimedCalls` pool, woken by a lock for each call it is given."""

    __slots__ = ("_job", "_pool", "_wake")

    def __init__(self, pool: TimedCalls) -> None:
        self._pool = pool
        self._wake = _thread.allocate_lock()
        self._wake.acquire()
        self._job: _Job | None = None
        threading.Thread(target=self._serve, name="flaskserve-model-call", daemon=True).start()

    def start(self, job: _Job) -> None:
        self._job = job
        self._wake.release()

    def _serve(self) -> None:
        while True:
            self._wake.acquire()
            job = self._job
            assert job is not None
            try:
                job.value = job.function(job.matrix)
            except BaseException as error:
                job.error = error
            self._job = None
            self._pool._finished(self, job)


def replace_forked_worker() -> Callable[[], None]:
    """The default ``retire``: a worker process forked from this one stops gracefully, to be replaced.

    gunicorn's and granian's masters build the app, then fork the workers that
    serve it; a worker that gets ``TERM`` finishes the requests it holds and exits,
    and its master starts a new one. The process that built the app (a test, or
    ``flask run``) has no master to replace it, so there the call only logs.
    """
    builder = os.getpid()

    def retire() -> None:
        if os.getpid() == builder:
            log.error("model calls are stuck past their timeout; restart the server to free their threads")
            return
        log.error(
            "model calls are stuck past their timeout; this worker stops gracefully to be replaced",
            extra={"pid": os.getpid()},
        )
        os.kill(os.getpid(), signal.SIGTERM)

    return retire


#: One model version's caches: the model, its cache (both tiers) and the process's own tier of it.
_Caches = tuple[ServedModel, AnswerCache | None, PredictionCache | None]


class InferenceService:
    """Runs predictions for every protocol; one per app.

    The server-wide batching and cache settings apply to every model whose own
    settings do not override them; ``shared_cache``, when given, is the second
    tier behind each model version's own cache (:mod:`.shared_cache`). ``clock`` drives batch delays and cache
    expiry; ``occupancy`` (requests inside the process, counted at the WSGI
    edge) lets a batch leader stop waiting when no one else can join.
    ``predict_timeout_s`` (0: none) bounds each model call; ``retire`` is called
    once ``max_stuck`` calls are past it at once, and not in the first
    ``retire_after_s`` (default: :func:`replace_forked_worker`).
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
        shared_cache: SharedTier | None = None,
        clock: Clock | None = None,
        occupancy: Occupancy | None = None,
        predict_timeout_s: float = 0.0,
        max_stuck: int = 2,
        retire: Callable[[], None] | None = None,
        retire_after_s: float = RETIRE_AFTER_S,
    ) -> None:
        self.max_rows = max_rows
        self.observer: InferenceObserver = observer or NullObserver()
        self.max_batch_size = max_batch_size
        self.max_batch_delay_ms = max_batch_delay_ms
        self.cache_size = cache_size
        self.cache_max_bytes = cache_max_bytes
        self.cache_ttl_s = cache_ttl_s
        self.shared_cache = shared_cache
        self.clock: Clock = clock or SystemClock()
        self.occupancy = occupancy
        self.predict_timeout_s = predict_timeout_s
        self.timed_calls = TimedCalls(
            max_stuck, retire if retire is not None else replace_forked_worker(), retire_after_s
        )
        self._routes: dict[tuple[str, str, str], _Route] = {}
        self._caches: dict[tuple[str, str], _Caches] = {}
        self._building = threading.Lock()

    def predict(self, model: ServedModel, method: str, matrix: npt.NDArray[Any]) -> Prediction:
        model.check_method(method)
        return self._run(model, method, matrix)

    def explain(self, model: ServedModel, matrix: npt.NDArray[Any]) -> Prediction:
        """Explain ``model``'s answers for the rows of ``matrix``; one explanation row per input row.

        An explanation is run as the model's method :data:`~flaskserve.models.explain.EXPLAIN`, so
        the row limit, cache, batching, timeout and metrics of predictions apply to it unchanged.
        A model that cannot be explained is refused here, before it queues.
        """
        model.explainer()
        return self._run(model, EXPLAIN, matrix)

    def _run(self, model: ServedModel, method: str, matrix: npt.NDArray[Any]) -> Prediction:
        rows = int(matrix.shape[0])
        if rows > self.max_rows:
            raise LimitExceeded(
                f"the request has {rows} rows; at most {self.max_rows} are accepted per request"
            )
        route = self._routes.get((model.name, model.version, method))
        if route is None or route.model is not model:
            route = self._build_route(model, method)
        return route.predict(matrix)

    def replay(self, model: ServedModel, form: bytes) -> Replay | None:
        """The reply kept for request ``form`` of ``model``, if its answer is cached; counted as a hit.

        Only the process's own cache keeps forms; a miss here is not counted (the
        request then takes the full path, whose lookup is).
        """
        held = self._caches.get((model.name, model.version))
        if held is None or held[0] is not model or held[2] is None:
            return None
        found = held[2].replay(form)
        if not isinstance(found, Replay):
            return None
        self.observer.cache_lookup(model.name, model.version, True)
        return found

    def remember(self, model: ServedModel, form: bytes, prediction: Prediction, replay: Replay) -> None:
        """Keep ``replay`` for request ``form`` beside the cached answer ``prediction`` came with."""
        held = self._caches.get((model.name, model.version))
        if prediction.cache_key is None or held is None or held[0] is not model or held[2] is None:
            return
        held[2].attach(prediction.cache_key, prediction.values, form, replay, replay.nbytes)

    def batch_settings(self, model: ServedModel) -> tuple[int, float]:
        """``(max_batch_size, max_batch_delay_ms)`` in force for ``model``."""
        own = model.settings
        size = own.max_batch_size if own.max_batch_size is not None else self.max_batch_size
        delay = own.max_batch_delay_ms if own.max_batch_delay_ms is not None else self.max_batch_delay_ms
        return size, delay

    def timeout_s(self, model: ServedModel) -> float:
        """Seconds a call of ``model`` may take before its request fails; 0 when there is no limit."""
        own = model.settings.predict_timeout_s
        return own if own is not None else self.predict_timeout_s

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

            def isolated(matrix: Matrix) -> Matrix:
                return call_isolated(model, method, matrix, observer(), kernel)

            timeout_s = self.timeout_s(model)
            call = self.timed_calls.bounded(isolated, timeout_s, model.name) if timeout_s > 0 else isolated

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

    def _cache_for(self, model: ServedModel) -> AnswerCache | None:
        """One cache per model version, shared by its methods (keys name the method).

        With a shared tier, the process's own cache is the first tier and the shared one the second.
        """
        held = self._caches.get((model.name, model.version))
        if held is not None and held[0] is model:
            return held[1]
        entries = self.cache_entries(model)
        cache: AnswerCache | None = None
        local: PredictionCache | None = None
        if entries > 0:
            local = PredictionCache(
                entries, max_bytes=self.cache_max_bytes, ttl_s=self.cache_ttl_s, clock=self.clock
            )
            cache = local if self.shared_cache is None else TieredCache(local, self.shared_cache)
        self._caches[(model.name, model.version)] = (model, cache, local)
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
        cache: AnswerCache | None,
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
                return Prediction(values=cached, cache_hit=True, batch_rows=0, cache_key=key)
        if self.batcher is not None:
            result = self.batcher.submit(matrix)
            values, batch_rows = result.values, result.batch_rows
        else:
            values, batch_rows = self.call(matrix), int(matrix.shape[0])
        if cache is not None:
            held = cache.put(key, values)
            if held is None:
                return Prediction(values=values, cache_hit=False, batch_rows=batch_rows)
            # The cache's read-only copy: equal values, and the one a hit would have given.
            return Prediction(values=held, cache_hit=False, batch_rows=batch_rows, cache_key=key)
        return Prediction(values=values, batch_rows=batch_rows)
