"""The shared cache tier: answers kept as data only, poisoned entries are misses, failures are brief."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flaskserve.errors import ConfigError
from flaskserve.inference.cache import KeyMaker, PredictionCache
from flaskserve.inference.shared_cache import (
    FAILURES_BEFORE_PAUSE,
    PAUSE_AFTER_ERROR_S,
    RedisTier,
    TieredCache,
    decode_answer,
    encode_answer,
    shared_tier,
)

KEY = KeyMaker("iris", "1", "ab" * 32, "predict").key(np.array([[1.0, 2.0]]))


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


class DictRedis:
    """The two calls of ``redis.Redis`` the tier makes, over a dict; ``calls`` counts them."""

    def __init__(self) -> None:
        self.values: dict[bytes, bytes] = {}
        self.expiry_ms: dict[bytes, int] = {}
        self.calls = 0

    def get(self, key: bytes) -> bytes | None:
        self.calls += 1
        return self.values.get(key)

    def set(self, key: bytes, value: bytes, px: int) -> None:
        self.calls += 1
        self.values[key] = value
        self.expiry_ms[key] = px


class DownRedis(DictRedis):
    def get(self, key: bytes) -> bytes | None:
        self.calls += 1
        raise TimeoutError("Timeout reading from socket")

    def set(self, key: bytes, value: bytes, px: int) -> None:
        self.calls += 1
        raise ConnectionRefusedError("Connection refused")


def tier(client: DictRedis, **overrides: Any) -> tuple[RedisTier, list[str]]:
    errors: list[str] = []
    options: dict[str, Any] = {"prefix": "test", "ttl_s": 60.0, "max_entry_bytes": 4096}
    options.update(overrides)
    return RedisTier(client, on_error=errors.append, **options), errors


ANSWERS = [
    pytest.param(np.array([[0.25, -1.5], [3.0, 4.0]]), id="float64 matrix"),
    pytest.param(np.array([1, 0, 2], dtype=np.int32), id="int32 labels"),
    pytest.param(np.array([True, False]), id="booleans"),
    pytest.param(np.array([0.5], dtype=np.float32), id="float32"),
    pytest.param(np.array(["setosa", "virginica"]), id="fixed-width texts"),
    pytest.param(np.array(["réponse", "答え", ""], dtype=object), id="object texts"),
    pytest.param(np.zeros((0, 3)), id="no rows"),
]


@pytest.mark.parametrize("values", ANSWERS)
def test_an_answer_comes_back_equal_and_read_only(values: np.ndarray[Any, Any]) -> None:
    data = encode_answer(values)
    assert data is not None

    back = decode_answer(data)

    assert back is not None
    assert back.dtype == values.dtype
    assert back.shape == values.shape
    assert back.tolist() == values.tolist()
    assert not back.flags.writeable


def test_an_answer_of_arbitrary_objects_is_not_shared() -> None:
    assert encode_answer(np.array([{"a": 1}, 2], dtype=object)) is None


class Boom:
    """Unpickling this would write a file: proof that nothing is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "ran"))


def header(dtype: Any, shape: Any) -> bytes:
    import orjson

    head = orjson.dumps({"dtype": dtype, "shape": shape})
    return b"FSC1" + len(head).to_bytes(2, "big") + head


POISONED = [
    pytest.param(b"", id="empty"),
    pytest.param(b"FSC1", id="magic alone"),
    pytest.param(b"FSC1\x00\x05{nope", id="header not JSON"),
    pytest.param(header("<f8", [2]) + b"\x00" * 15, id="bytes short of the shape"),
    pytest.param(header("<f8", [1]) + b"\x00" * 9, id="bytes beyond the shape"),
    pytest.param(header("|O", [1]) + b"\x00" * 8, id="object dtype (pointers)"),
    pytest.param(header("V8", [1]) + b"\x00" * 8, id="void dtype"),
    pytest.param(header([["a", "<f8"]], [1]) + b"\x00" * 8, id="structured dtype"),
    pytest.param(header("(2,)f8", [1]) + b"\x00" * 16, id="sub-array dtype"),
    pytest.param(header("not a dtype", [1]) + b"\x00" * 8, id="unknown dtype"),
    pytest.param(header("<f8", [-1]) + b"\x00" * 8, id="negative size"),
    pytest.param(header("<f8", [True]) + b"\x00" * 8, id="boolean size"),
    pytest.param(header("<f8", [2**40, 2**40]), id="enormous shape"),
    pytest.param(header("<f8", [1] * 40) + b"\x00" * 8, id="too many dimensions"),
    pytest.param(header("texts", [2]) + b'["a", 1]', id="texts that are not all texts"),
    pytest.param(header("texts", [3]) + b'["a", "b"]', id="texts short of the shape"),
    pytest.param(b"FSC1\x00\x02[]", id="header not an object"),
]


@pytest.mark.parametrize("data", POISONED)
def test_a_malformed_entry_decodes_to_nothing(data: bytes) -> None:
    assert decode_answer(data) is None


def test_a_pickled_entry_is_a_counted_miss_and_runs_no_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    client = DictRedis()
    shared, errors = tier(client)
    client.values[b"test:cache:" + KEY.hex().encode()] = pickle.dumps(Boom(marker))

    assert shared.get(KEY) is None
    assert errors == ["decode"]
    assert not marker.exists()


def test_an_answer_put_by_one_process_is_found_by_another() -> None:
    client = DictRedis()
    writer, _ = tier(client, ttl_s=30.0)
    reader, errors = tier(client)

    writer.put(KEY, np.array([2.5]))

    found = reader.get(KEY)
    assert found is not None
    assert found.tolist() == [2.5]
    assert list(client.expiry_ms.values()) == [30_000]
    assert errors == []


def test_an_answer_larger_than_the_entry_bound_is_not_shared() -> None:
    client = DictRedis()
    shared, _ = tier(client, max_entry_bytes=1000)

    shared.put(KEY, np.zeros(200))

    assert client.values == {}


def test_a_failing_store_is_counted_and_left_alone_for_a_while() -> None:
    clock = ManualClock()
    client = DownRedis()
    shared, errors = tier(client, clock=clock)

    for _ in range(FAILURES_BEFORE_PAUSE):
        assert shared.get(KEY) is None
    shared.put(KEY, np.array([1.0]))
    assert shared.get(KEY) is None
    assert (client.calls, errors) == (FAILURES_BEFORE_PAUSE, ["get"] * FAILURES_BEFORE_PAUSE)

    clock.now += PAUSE_AFTER_ERROR_S
    shared.put(KEY, np.array([1.0]))
    assert (client.calls, errors[-1]) == (FAILURES_BEFORE_PAUSE + 1, "put")


class FlakyRedis(DictRedis):
    """Fails every other call, as a store that is slow now and then."""

    def get(self, key: bytes) -> bytes | None:
        self.calls += 1
        if self.calls % 2:
            raise TimeoutError("Timeout reading from socket")
        return self.values.get(key)


def test_a_failure_now_and_then_costs_a_miss_not_a_pause() -> None:
    client = FlakyRedis()
    shared, errors = tier(client, clock=ManualClock())
    shared.put(KEY, np.array([3.0]))
    client.calls = 0

    found = [shared.get(KEY) for _ in range(6)]

    assert [f is not None for f in found] == [False, True] * 3
    assert errors == ["get"] * 3


def test_a_hit_in_the_shared_tier_fills_the_first() -> None:
    client = DictRedis()
    RedisTier(client, prefix="test", ttl_s=60.0, max_entry_bytes=4096).put(KEY, np.array([7.0]))
    local = PredictionCache(10)
    cache = TieredCache(local, RedisTier(client, prefix="test", ttl_s=60.0, max_entry_bytes=4096))

    found = cache.get(KEY)
    calls = client.calls
    again = cache.get(KEY)

    assert found is not None
    assert found.tolist() == [7.0]
    assert again is not None
    assert again.tolist() == [7.0]
    assert client.calls == calls, "the second lookup is answered by the first tier"


def test_memory_storage_means_no_shared_tier() -> None:
    assert shared_tier("memory://", prefix="p", ttl_s=1, timeout_ms=5, max_entry_bytes=1) is None


def test_an_unknown_storage_is_refused_without_its_password() -> None:
    with pytest.raises(ConfigError, match="redis://HOST:PORT/DB") as caught:
        shared_tier(
            "memcached://user:s3cret@cache:11211", prefix="p", ttl_s=1, timeout_ms=5, max_entry_bytes=1
        )
    assert "s3cret" not in str(caught.value)
