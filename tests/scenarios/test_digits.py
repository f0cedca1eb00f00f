"""Image recognition: the digits example trains, serves from its own config, and reads held-out digits."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import requests
from example_code import example_settings, load_example

from flaskserve.settings import Settings


def test_held_out_digits_are_read_through_v2(tmp_path: Path, serve: Callable[[Settings], str]) -> None:
    train = load_example("digits", "train")
    client = load_example("digits", "client", train=train)
    train_images, test_images, train_digits, test_digits = train.load_split()
    train.profile(train.save(train.train(train_images, train_digits), tmp_path), train_images)

    url = serve(example_settings("digits", tmp_path))
    digits, confidences = client.infer(url, test_images)

    accuracy = sum(p == t for p, t in zip(digits, test_digits.tolist(), strict=True)) / len(digits)
    assert len(digits) == len(test_digits) == 450
    assert accuracy >= 0.95
    assert all(0.0 < c <= 1.0 for c in confidences)
    # The profile train.py wrote: held-out images look like the training ones, pixel by pixel.
    monitored = requests.get(url + "/models/digits/monitoring", timeout=10).json()["versions"][0]
    assert monitored["profiled"] is True
    assert monitored["window_rows"] == 450
    pixels = [f for f in monitored["features"] if f["role"] == "input"]
    assert len(pixels) == 64
    assert {f["band"] for f in pixels} <= {"stable", "moderate"}


def test_pixels_by_name_and_the_shipped_drawing_answer_the_simple_protocol(tmp_path: Path) -> None:
    from flaskserve.app import create_app

    train = load_example("digits", "train")
    train_images, test_images, train_digits, _ = train.load_split()
    model = train.train(train_images, train_digits)
    train.save(model, tmp_path)

    client = create_app(example_settings("digits", tmp_path)).test_client()
    image = test_images.iloc[0]
    response = client.post("/predict", json={name: float(value) for name, value in image.items()})
    assert response.status_code == 200
    assert response.get_json() == {"prediction": int(model.predict(test_images.iloc[:1])[0])}
    described = client.get("/models/digits").get_json()["versions"][0]["signature"]
    assert described["features"][:2] == ["pixel_0_0", "pixel_0_1"]
    assert described["n_features"] == 64

    # The README's seven.png is what draw.py draws, and reads as a seven as a body and as a form upload.
    draw = load_example("digits", "draw")
    shipped = (Path(draw.__file__).parent / "seven.png").read_bytes()
    assert draw.draw(tmp_path / "seven.png").read_bytes() == shipped
    as_body = client.post("/models/digits/predict", data=shipped, content_type="image/png")
    as_upload = client.post(
        "/predict", data={"file": (io.BytesIO(shipped), "seven.png")}, content_type="multipart/form-data"
    )
    assert as_body.get_json() == as_upload.get_json() == {"prediction": 7}
