"""Chat intent classification: the intents example trains, serves as a text model, and reads new phrasings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from example_code import example_settings, load_example

from flaskserve.settings import Settings

#: Phrasings written for this test, none of them in intents.csv (one with a typo).
HELD_OUT = [
    ("hey good morning to you", "greeting"),
    ("ok see you tomorrow then", "goodbye"),
    ("where has my parcle got to", "track_order"),
    ("I would like to cancel the order I made yesterday", "cancel_order"),
    ("the blender broke and I want my money refunded", "refund"),
    ("is the shop open on sunday afternoon", "opening_hours"),
    ("can I please chat with a real human", "talk_to_human"),
    ("thanks so much for sorting that out", "thanks"),
]


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    train = load_example("intents", "train")
    folder = tmp_path_factory.mktemp("intents")
    texts, intents = train.load_intents()
    train.profile(train.save(train.train(texts, intents), folder), texts)
    return folder


def test_new_phrasings_are_understood_over_http(repository: Path, serve: Callable[[Settings], str]) -> None:
    client = load_example("intents", "client")
    url = serve(example_settings("intents", repository))
    answers = [client.classify(url, text, threshold=0.5) for text, _ in HELD_OUT]
    assert [intent for intent, _ in answers] == [intent for _, intent in HELD_OUT]
    assert all(confidence >= 0.5 for _, confidence in answers)


def test_off_topic_messages_fall_back_to_not_sure(repository: Path, serve: Callable[[Settings], str]) -> None:
    client = load_example("intents", "client")
    url = serve(example_settings("intents", repository))
    for text in ("asdf qwer zxcv", "what is the weather in paris"):
        intent, confidence = client.classify(url, text, threshold=0.5)
        assert intent == client.NOT_SURE
        assert confidence < 0.5


def test_the_config_serves_a_text_model_with_its_string_limit(repository: Path) -> None:
    from flaskserve.app import create_app

    client = create_app(example_settings("intents", repository)).test_client()
    signature = client.get("/models/intents").get_json()["versions"][0]["signature"]
    assert signature["input"] == "text"
    assert signature["features"] == ["text"]
    too_long = client.post("/predict", json={"text": "where is my parcel " * 200})
    assert too_long.status_code == 400
    assert too_long.get_json()["code"] == "limit_exceeded"
    batch = client.post("/predict", json={"instances": [text for text, _ in HELD_OUT]})
    assert batch.get_json() == {"predictions": [intent for _, intent in HELD_OUT]}


def test_the_example_ships_a_profile_and_gibberish_drifts_in_vocabulary(repository: Path) -> None:
    from flaskserve.app import create_app

    train = load_example("intents", "train")
    texts, _ = train.load_intents()
    client = create_app(example_settings("intents", repository)).test_client()
    assert client.post("/predict", json={"instances": texts}).status_code == 200
    first = client.get("/models/intents/monitoring").get_json()["versions"][0]
    assert first["profiled"] is True
    bands = {f["feature"]: f["band"] for f in first["features"] if f["role"] == "input"}
    assert bands == {"text:length": "stable", "text:vocabulary_hits": "stable"}

    # As many messages again, typed by a cat: nothing the model knows.
    gibberish = [f"qwx{i} zzv{i} kpt{i}" for i in range(len(texts))]
    assert client.post("/predict", json={"instances": gibberish}).status_code == 200
    second = client.get("/models/intents/monitoring").get_json()["versions"][0]
    hits = next(f for f in second["features"] if f["feature"] == "text:vocabulary_hits")
    assert hits["band"] == "major"
