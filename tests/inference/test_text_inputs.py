"""Text models on the hot path: cache keys made from the texts themselves, and no direct kernel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flaskserve.inference.cache import KeyMaker
from flaskserve.models.loaders.sklearn_kernels import find_kernel
from flaskserve.models.served import ServedModel
from flaskserve.models.signature import infer_signature


def texts(*values: str) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


@pytest.fixture
def keys() -> KeyMaker:
    return KeyMaker("intents", "1", "0" * 64, "predict")


def test_equal_texts_in_different_arrays_share_a_key(keys: KeyMaker) -> None:
    # Built separately, so the arrays hold different string objects (and pointers).
    first = texts("".join(["where is ", "my parcel"]), "hi")
    second = texts("where is my parcel", "".join(["h", "i"]))
    assert first[0] is not second[0]
    assert keys.key(first) == keys.key(second)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        pytest.param(texts("ab", "c"), texts("a", "bc"), id="same characters, split elsewhere"),
        pytest.param(texts("ab"), texts("a", "b"), id="one text against two"),
        pytest.param(texts("hi"), texts("hi "), id="a trailing space"),
        pytest.param(texts("é"), texts("e\u0301"), id="composed against decomposed"),
        pytest.param(texts(""), texts("", ""), id="empty texts"),
        pytest.param(texts("hi"), np.array(["hi"]), id="object against fixed-width unicode"),
    ],
)
def test_different_texts_never_share_a_key(keys: KeyMaker, one: np.ndarray, other: np.ndarray) -> None:
    assert keys.key(one) != keys.key(other)


def test_a_reused_pointer_cannot_return_another_texts_answer(keys: KeyMaker) -> None:
    seen = {keys.key(texts(f"utterance {i}")) for i in range(200)}
    assert len(seen) == 200


def test_text_models_get_no_direct_kernel(intents_model: Any) -> None:
    model = ServedModel(
        name="intents",
        version="1",
        estimator=intents_model,
        signature=infer_signature(intents_model),
        platform="sklearn_skops",
        sha256="0" * 64,
        source=Path("model.skops"),
    )
    for method in model.signature.methods:
        assert find_kernel(model, method) is None
    assert model.call("predict", texts("where is my parcel")).tolist() == ["track_order"]
