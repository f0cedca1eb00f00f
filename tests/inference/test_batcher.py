"""Adaptive batching: merged calls, answers split back in order, failures kept to their owners."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from flaskserve.inference.batcher import Batcher, Occupancy
from flaskserve.testing import ExplodingRegressor, ManualClock, diabetes_rows


class InstantClock:
    """Every wait runs out at once: leaders batch only what is already queued."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def wait(self, condition: threading.Condition, timeout: float) -> None:
        self.now += timeout


class RecordingModel:
    """Wraps a predict function and records the rows of every call it gets."""

    def __init__(self, predict: Callable[[Any], Any]) -> None:
        self._predict = predict
        self.calls: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, matrix: Any) -> Any:
        with self._lock:
            self.calls.append(int(matrix.shape[0]))
        return np.asarray(self._predict(matrix))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def regressor(diabetes_regressor: Any) -> RecordingModel:
    return RecordingModel(diabetes_regressor.predict)


@pytest.fixture
def exploding() -> RecordingModel:
    return RecordingModel(ExplodingRegressor().predict)


def run_together(batcher: Batcher, matrices: list[Any]) -> list[Any]:
    """Submit every matrix from its own thread; each result is the answer or the exception."""

    def submit(matrix: Any) -> Any:
        try:
            return batcher.submit(matrix)
        except Exception as error:
            return error

    with ThreadPoolExecutor(max_workers=len(matrices)) as pool:
        return list(pool.map(submit, matrices, timeout=30))


def test_batched_answers_equal_unbatched_predictions(
    diabetes_regressor: Any, regressor: RecordingModel
) -> None:
    rows = diabetes_rows(200)
    sizes = [1, 3, 2, 7, 1, 5, 4, 1, 2, 6] * 4
    starts = np.cumsum([0, *sizes[:-1]])
    matrices = [rows[start : start + size] for start, size in zip(starts, sizes, strict=True)]
    batcher = Batcher(regressor, max_rows=16, max_delay_s=0.002, clock=InstantClock())

    results = run_together(batcher, matrices)

    for matrix, result in zip(matrices, results, strict=True):
        np.testing.assert_allclose(result.values, diabetes_regressor.predict(matrix), rtol=1e-12)
    assert sum(regressor.calls) == sum(sizes)
    assert max(regressor.calls) <= 16


def test_concurrent_requests_become_one_call(
    clock: ManualClock, regressor: RecordingModel, diabetes_regressor: Any
) -> None:
    rows = diabetes_rows(6)
    batcher = Batcher(regressor, max_rows=6, max_delay_s=1.0, clock=clock)

    results = run_together(batcher, [rows[0:1], rows[1:3], rows[3:6]])

    assert regressor.calls == [6]
    assert [r.batch_rows for r in results] == [6, 6, 6]
    expected = diabetes_regressor.predict(rows)
    np.testing.assert_array_equal(np.concatenate([r.values for r in results]), expected)


def test_a_lone_request_waits_at_most_the_delay(clock: ManualClock, regressor: RecordingModel) -> None:
    batcher = Batcher(regressor, max_rows=8, max_delay_s=0.005, clock=clock)
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(batcher.submit, diabetes_rows(1))
        clock.wait_for_waiters(1)
        assert regressor.calls == []
        clock.advance(0.005)
        result = future.result(timeout=30)

    assert regressor.calls == [1]
    assert result.batch_rows == 1


def test_no_wait_when_every_request_in_the_process_is_queued(
    clock: ManualClock, regressor: RecordingModel
) -> None:
    occupancy = Occupancy()
    occupancy.enter()
    batcher = Batcher(regressor, max_rows=8, max_delay_s=60.0, clock=clock, occupancy=occupancy)

    result = batcher.submit(diabetes_rows(1))  # the clock never moves: waiting would hang

    assert regressor.calls == [1]
    assert result.values.shape == (1,)


def test_the_last_request_in_the_process_to_join_starts_the_batch(
    clock: ManualClock, regressor: RecordingModel, diabetes_regressor: Any
) -> None:
    occupancy = Occupancy()
    for _ in range(3):
        occupancy.enter()
    batcher = Batcher(regressor, max_rows=8, max_delay_s=60.0, clock=clock, occupancy=occupancy)
    rows = diabetes_rows(3)

    with ThreadPoolExecutor(max_workers=3) as pool:
        early = [pool.submit(batcher.submit, rows[0:1]), pool.submit(batcher.submit, rows[1:2])]
        clock.wait_for_waiters(1)
        waited_for_the_third = regressor.calls == []
        # The clock never moves: only this arrival can end the leader's wait.
        last = pool.submit(batcher.submit, rows[2:3])
        results = [future.result(timeout=30) for future in [*early, last]]

    assert waited_for_the_third
    assert regressor.calls == [3]
    for index, result in enumerate(results):
        expected = diabetes_regressor.predict(rows[index : index + 1])
        np.testing.assert_allclose(result.values, expected, rtol=1e-12)


@pytest.mark.parametrize(
    "rows",
    [pytest.param(4, id="exactly max_rows"), pytest.param(50, id="far above max_rows")],
)
def test_a_request_of_max_rows_or_more_runs_alone(
    clock: ManualClock, regressor: RecordingModel, diabetes_regressor: Any, rows: int
) -> None:
    batcher = Batcher(regressor, max_rows=4, max_delay_s=60.0, clock=clock)
    matrix = diabetes_rows(rows)

    result = batcher.submit(matrix)

    assert regressor.calls == [rows]
    np.testing.assert_allclose(result.values, diabetes_regressor.predict(matrix), rtol=1e-12)


def test_a_poisoned_request_fails_alone(clock: ManualClock, exploding: RecordingModel) -> None:
    innocent_a = np.array([[1.0, 2.0]])
    poisoned = np.array([[-1.0, 2.0], [3.0, 4.0]])
    innocent_b = np.array([[5.0, 6.0]])
    batcher = Batcher(exploding, max_rows=4, max_delay_s=1.0, clock=clock)

    first, bad, last = run_together(batcher, [innocent_a, poisoned, innocent_b])

    assert isinstance(bad, ValueError)
    np.testing.assert_array_equal(first.values, [3.0])
    np.testing.assert_array_equal(last.values, [11.0])
    # One merged call that failed, then each member retried on its own.
    assert exploding.calls[0] == 4
    assert sorted(exploding.calls[1:]) == [1, 1, 2]


def test_a_failing_model_fails_every_request_with_its_own_error(clock: ManualClock) -> None:
    def broken(matrix: Any) -> Any:
        raise RuntimeError("model is broken")

    batcher = Batcher(broken, max_rows=2, max_delay_s=1.0, clock=clock)

    results = run_together(batcher, [np.zeros((1, 2)), np.ones((1, 2))])

    assert all(isinstance(r, RuntimeError) for r in results)
    assert results[0] is not results[1]


def test_leadership_passes_on_when_the_queue_outgrows_a_batch(
    clock: ManualClock, regressor: RecordingModel, diabetes_regressor: Any
) -> None:
    rows = diabetes_rows(40)
    matrices = [rows[i : i + 2] for i in range(0, 40, 2)]
    batcher = Batcher(regressor, max_rows=4, max_delay_s=0.0, clock=clock)

    results = run_together(batcher, matrices)

    for matrix, result in zip(matrices, results, strict=True):
        np.testing.assert_allclose(result.values, diabetes_regressor.predict(matrix), rtol=1e-12)
    assert sum(regressor.calls) == 40
    assert max(regressor.calls) <= 4


def test_batches_are_reported(clock: ManualClock, regressor: RecordingModel) -> None:
    formed: list[tuple[int, int]] = []
    batcher = Batcher(
        regressor,
        max_rows=3,
        max_delay_s=1.0,
        clock=clock,
        on_batch=lambda rows, requests, waited: formed.append((rows, requests)),
    )

    run_together(batcher, [diabetes_rows(1), diabetes_rows(2)])

    assert formed == [(3, 2)]
