"""Text signatures: which models take raw text, and how every request shape becomes their input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline, make_union
from sklearn.preprocessing import StandardScaler

from flaskserve.errors import (
    InvalidValue,
    LimitExceeded,
    MissingFeature,
    ModelLoadError,
    ShapeMismatch,
    UnknownFeature,
    WrongFeatureCount,
)
from flaskserve.models.signature import Signature, infer_signature, takes_text

TEXTS = ["where is my parcel", "hi", "merci beaucoup, à bientôt"]


def _object_array(values: list[Any]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


@pytest.fixture(scope="module")
def text(intents_model: Any) -> Signature:
    return infer_signature(intents_model)


def test_a_pipeline_led_by_a_vectorizer_takes_text(intents_model: Any) -> None:
    signature = infer_signature(intents_model)
    assert signature.is_text
    assert signature.feature_names == ("text",)
    assert signature.describe()["input"] == "text"
    assert signature.describe()["dtype"] == "str"
    assert signature.describe()["n_features"] == 1
    assert "predict_proba" in signature.methods
    assert "track_order" in signature.class_labels


@pytest.mark.parametrize(
    "estimator",
    [
        pytest.param(CountVectorizer(), id="a bare CountVectorizer"),
        pytest.param(TfidfVectorizer(), id="a bare TfidfVectorizer"),
        pytest.param(make_pipeline(HashingVectorizer(n_features=32), LogisticRegression()), id="hashing"),
        pytest.param(
            make_pipeline(
                make_union(TfidfVectorizer(), TfidfVectorizer(analyzer="char_wb")), LogisticRegression()
            ),
            id="a FeatureUnion of word and character n-grams",
        ),
        pytest.param(make_union(TfidfVectorizer(), "drop"), id="a union with a dropped part"),
    ],
)
def test_text_vectorizers_are_recognised(estimator: Any) -> None:
    assert takes_text(estimator)


@pytest.mark.parametrize(
    "estimator",
    [
        pytest.param(LogisticRegression(), id="a plain classifier"),
        pytest.param(make_pipeline(LogisticRegression()), id="a pipeline of numbers"),
        pytest.param(make_union(TfidfVectorizer(), StandardScaler()), id="a union of text and numbers"),
    ],
)
def test_other_estimators_are_tables(estimator: Any) -> None:
    assert not takes_text(estimator)


def test_settings_name_the_text_feature(intents_model: Any) -> None:
    signature = infer_signature(intents_model, feature_names=["utterance"])
    assert signature.feature_names == ("utterance",)
    assert signature.matrix_from_records([{"utterance": "hi"}]).tolist() == ["hi"]


def test_a_text_model_takes_exactly_one_feature(intents_model: Any) -> None:
    with pytest.raises(ModelLoadError, match="one feature"):
        infer_signature(intents_model, feature_names=["subject", "body"])


def test_missing_values_do_not_apply_to_text(intents_model: Any) -> None:
    with pytest.raises(ModelLoadError, match="allow_missing"):
        infer_signature(intents_model, allow_missing=True)


def test_settings_can_declare_a_custom_model_as_text() -> None:
    class Echo:
        def predict(self, texts: Any) -> Any:
            return np.asarray([len(t) for t in texts])

    assert infer_signature(Echo(), input_kind="text").is_text
    with pytest.raises(ModelLoadError, match="n_features_in_"):
        infer_signature(Echo())


def test_settings_can_force_a_table(intents_model: Any) -> None:
    with pytest.raises(ModelLoadError, match="n_features_in_"):
        infer_signature(intents_model, input_kind="table")


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda s: s.matrix_from_records([{"text": t} for t in TEXTS]), id="records"),
        pytest.param(lambda s: s.matrix_from_rows(list(TEXTS)), id="bare strings"),
        pytest.param(lambda s: s.matrix_from_rows([[t] for t in TEXTS]), id="rows of one"),
        pytest.param(lambda s: s.matrix_from_rows(_object_array(TEXTS)), id="decoded [N] array"),
        pytest.param(lambda s: s.matrix_from_rows(_object_array(TEXTS).reshape(-1, 1)), id="decoded [N, 1]"),
        pytest.param(lambda s: s.matrix_from_rows(np.array(TEXTS)), id="fixed-width unicode array"),
        pytest.param(
            lambda s: s.matrix_from_rows(_object_array([t.encode() for t in TEXTS])), id="UTF-8 bytes"
        ),
        pytest.param(lambda s: s.matrix_from_columns({"text": list(TEXTS)}), id="a column"),
        pytest.param(lambda s: s.matrix_from_columns({"text": _object_array(TEXTS)}), id="an array column"),
    ],
)
def test_every_shape_becomes_a_1d_array_of_str(text: Signature, build: Any) -> None:
    texts = build(text)
    assert texts.dtype == object
    assert texts.shape == (len(TEXTS),)
    assert texts.tolist() == TEXTS
    assert all(type(t) is str for t in texts)


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        pytest.param(
            lambda s: s.matrix_from_records([{"text": 5}]),
            InvalidValue,
            "feature 'text' in row 0 must be a string; got number 5",
            id="a number",
        ),
        pytest.param(
            lambda s: s.matrix_from_rows(["hi", None]),
            InvalidValue,
            "feature 'text' in row 1 must be a string; got null",
            id="null",
        ),
        pytest.param(lambda s: s.matrix_from_rows([True]), InvalidValue, "got boolean true", id="a boolean"),
        pytest.param(
            lambda s: s.matrix_from_rows([["a", "b"]]),
            WrongFeatureCount,
            "row 0 has 2 values",
            id="two values",
        ),
        pytest.param(
            lambda s: s.matrix_from_rows(np.zeros((2, 1), dtype=np.float32)),
            InvalidValue,
            "must be text",
            id="a numeric tensor",
        ),
        pytest.param(
            lambda s: s.matrix_from_rows(_object_array(["a", "b"]).reshape(1, 2)),
            ShapeMismatch,
            r"\[rows\] or \[rows, 1\]",
            id="two columns",
        ),
        pytest.param(
            lambda s: s.matrix_from_rows(_object_array([b"\xff\xfe"])),
            InvalidValue,
            "not valid UTF-8",
            id="bytes that are not UTF-8",
        ),
        pytest.param(lambda s: s.matrix_from_rows([]), ShapeMismatch, "no rows", id="no rows"),
        pytest.param(lambda s: s.matrix_from_rows("hi"), ShapeMismatch, "list of texts", id="a bare string"),
        pytest.param(lambda s: s.matrix_from_records([{}]), MissingFeature, "'text'", id="no text key"),
        pytest.param(
            lambda s: s.matrix_from_records([{"text": "a", "lang": "en"}]),
            UnknownFeature,
            "'lang'",
            id="an extra key",
        ),
    ],
)
def test_bad_texts_are_refused_by_name(text: Signature, build: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        build(text)


def test_texts_are_bounded_in_utf8_bytes(intents_model: Any) -> None:
    signature = infer_signature(intents_model, max_text_bytes=10)
    assert signature.matrix_from_rows(["0123456789"]).tolist() == ["0123456789"]
    assert signature.matrix_from_rows(["ééééé"]).tolist() == ["ééééé"]  # 10 bytes
    with pytest.raises(LimitExceeded, match="row 1 is 11 bytes of UTF-8 text; at most 10"):
        signature.matrix_from_rows(["ok", "ééééé!"])  # 6 characters, 11 bytes


def test_the_warm_up_probe_is_an_empty_text(text: Signature, intents_model: Any) -> None:
    probe = text.probe_input()
    assert probe.tolist() == [""]
    assert intents_model.predict(probe).shape == (1,)


def test_tables_keep_their_numeric_matrix(linear_xy: Any) -> None:
    signature = infer_signature(linear_xy)
    assert not signature.is_text
    assert signature.describe()["input"] == "table"
    assert signature.probe_input().shape == (1, 2)
    assert signature.matrix_from_rows([[1, 2]]).dtype == np.float64
