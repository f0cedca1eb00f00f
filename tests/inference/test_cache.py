"""The prediction cache: LRU and byte bounds, expiry on an injected clock, and keys of what the model sees."""

from __future__ import annotations

import numpy as np
import pytest

from flaskserve.inference.cache import (
    ENTRY_OVERHEAD_BYTES,
    FORM_OVERHEAD_BYTES,
    MAX_FORMS_PER_ANSWER,
    KeyMaker,
    PredictionCache,
)
from flaskserve.models.signature import Signature
from flaskserve.testing import ManualClock

ROW = np.array([[1.0, 2.0]])


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def keys() -> KeyMaker:
    return KeyMaker("linear", "1", "abc123", "predict")


def answer(value: float) -> np.ndarray:
    return np.array([value])


def test_a_stored_answer_is_found_and_read_only(keys: KeyMaker) -> None:
    cache = PredictionCache(4)
    cache.put(keys.key(ROW), answer(7.0))

    found = cache.get(keys.key(ROW.copy()))

    assert found is not None
    np.testing.assert_array_equal(found, [7.0])
    assert not found.flags.writeable


def test_the_least_recently_used_entry_is_evicted_first(keys: KeyMaker) -> None:
    cache = PredictionCache(2)
    first, second, third = (keys.key(np.array([[float(i), 0.0]])) for i in range(3))
    cache.put(first, answer(1))
    cache.put(second, answer(2))
    cache.get(first)  # first is now the most recently used

    cache.put(third, answer(3))

    assert cache.get(second) is None
    assert cache.get(first) is not None
    assert cache.get(third) is not None
    assert len(cache) == 2


def test_the_byte_bound_evicts_and_refuses_oversized_answers(keys: KeyMaker) -> None:
    small = np.zeros(10)
    budget = 2 * (small.nbytes + ENTRY_OVERHEAD_BYTES)
    cache = PredictionCache(100, max_bytes=budget)
    for i in range(3):
        cache.put(keys.key(np.array([[float(i), 0.0]])), small)
    cache.put(keys.key(np.array([[9.0, 9.0]])), np.zeros(10_000))

    assert len(cache) == 2
    assert cache.size_bytes <= budget
    assert cache.get(keys.key(np.array([[9.0, 9.0]]))) is None


def test_entries_expire_after_the_ttl(clock: ManualClock, keys: KeyMaker) -> None:
    cache = PredictionCache(4, ttl_s=30.0, clock=clock)
    cache.put(keys.key(ROW), answer(7.0))

    clock.advance(29.9)
    assert cache.get(keys.key(ROW)) is not None
    clock.advance(0.1)
    assert cache.get(keys.key(ROW)) is None
    assert len(cache) == 0


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(KeyMaker("diabetes", "1", "abc123", "predict"), id="another model"),
        pytest.param(KeyMaker("linear", "2", "abc123", "predict"), id="another version"),
        pytest.param(KeyMaker("linear", "1", "def456", "predict"), id="same version, another file"),
        pytest.param(KeyMaker("linear", "1", "abc123", "predict_proba"), id="another method"),
    ],
)
def test_keys_never_cross_models_versions_or_methods(keys: KeyMaker, other: KeyMaker) -> None:
    assert keys.key(ROW) != other.key(ROW)


@pytest.mark.parametrize(
    "matrix",
    [
        pytest.param(np.array([[1.0, 2.0, 0.0]]), id="more values"),
        pytest.param(np.array([[1.0], [2.0]]), id="same bytes, another shape"),
        pytest.param(np.array([[1, 2]], dtype=np.int64), id="another dtype"),
        pytest.param(np.array([[1.0, 2.5]]), id="another value"),
    ],
)
def test_keys_differ_when_the_input_differs(keys: KeyMaker, matrix: np.ndarray) -> None:
    assert keys.key(ROW) != keys.key(matrix)


def test_keys_depend_on_the_decoded_rows_only(keys: KeyMaker) -> None:
    signature = Signature(feature_names=("x", "y"), methods=("predict",))
    by_name = signature.matrix_from_records([{"y": 2, "x": 1}])
    by_position = signature.matrix_from_rows([[1.0, 2.0]])
    column_major = np.asfortranarray(np.array([[1, 2]], dtype=np.float64))

    assert keys.key(by_name) == keys.key(by_position) == keys.key(column_major)


# -- request forms kept beside an answer ---------------------------------------------

FORM, OTHER_FORM = b"form-1", b"form-2"


def stored(cache: PredictionCache, keys: KeyMaker, row: np.ndarray, value: float) -> tuple[bytes, np.ndarray]:
    key = keys.key(row)
    held = cache.put(key, answer(value))
    assert held is not None
    return key, held


def test_a_form_is_found_while_its_answer_is(keys: KeyMaker) -> None:
    cache = PredictionCache(4)
    key, held = stored(cache, keys, ROW, 7.0)

    kept = cache.attach(key, held, FORM, "the reply", cost=10)

    assert kept
    assert cache.replay(FORM) == "the reply"
    assert cache.replay(OTHER_FORM) is None


def test_a_form_goes_with_its_evicted_answer_and_a_replay_counts_as_a_use(keys: KeyMaker) -> None:
    cache = PredictionCache(2)
    first, held = stored(cache, keys, ROW, 1.0)
    cache.attach(first, held, FORM, "first", cost=0)
    stored(cache, keys, np.array([[2.0, 0.0]]), 2.0)
    cache.replay(FORM)  # the first answer is now the most recently used

    stored(cache, keys, np.array([[3.0, 0.0]]), 3.0)
    assert cache.replay(FORM) == "first"
    stored(cache, keys, np.array([[4.0, 0.0]]), 4.0)
    stored(cache, keys, np.array([[5.0, 0.0]]), 5.0)

    assert cache.replay(FORM) is None
    assert cache.get(first) is None
    assert cache.forms == 0


def test_a_form_expires_with_its_answer(clock: ManualClock, keys: KeyMaker) -> None:
    cache = PredictionCache(4, ttl_s=30.0, clock=clock)
    key, held = stored(cache, keys, ROW, 7.0)
    cache.attach(key, held, FORM, "reply", cost=0)

    clock.advance(30.0)

    assert cache.replay(FORM) is None
    assert (len(cache), cache.forms) == (0, 0)


def test_a_form_is_not_kept_for_an_answer_replaced_meanwhile(keys: KeyMaker) -> None:
    cache = PredictionCache(4)
    key, old = stored(cache, keys, ROW, 7.0)
    _, new = stored(cache, keys, ROW, 7.0)

    assert not cache.attach(key, old, FORM, "encoded from the old copy", cost=0)
    assert cache.attach(key, new, FORM, "encoded from the new copy", cost=0)
    # Replacing the answer drops the forms kept with it.
    stored(cache, keys, ROW, 8.0)
    assert cache.replay(FORM) is None


def test_forms_count_against_the_byte_bound_and_are_few_per_answer(keys: KeyMaker) -> None:
    cache = PredictionCache(100, max_bytes=10_000)
    key, held = stored(cache, keys, ROW, 7.0)
    answer_bytes = cache.size_bytes

    kept = [cache.attach(key, held, b"form-%d" % i, i, cost=100) for i in range(MAX_FORMS_PER_ANSWER + 1)]

    assert kept == [True] * MAX_FORMS_PER_ANSWER + [False]
    assert cache.size_bytes == answer_bytes + MAX_FORMS_PER_ANSWER * (100 + FORM_OVERHEAD_BYTES)
    assert not cache.attach(key, held, b"too large", None, cost=10_000)


def test_forms_make_room_by_evicting_older_answers(keys: KeyMaker) -> None:
    small = np.zeros(10)
    budget = 3 * (small.nbytes + ENTRY_OVERHEAD_BYTES)
    cache = PredictionCache(100, max_bytes=budget)
    old = keys.key(np.array([[0.0, 0.0]]))
    cache.put(old, small)
    key = keys.key(ROW)
    held = cache.put(key, small)
    assert held is not None

    cache.attach(key, held, FORM, "reply", cost=small.nbytes + ENTRY_OVERHEAD_BYTES - FORM_OVERHEAD_BYTES + 1)

    assert cache.get(old) is None
    assert cache.replay(FORM) == "reply"
    assert cache.size_bytes <= budget
