"""Images in: PNG and JPEG bodies and form uploads become the feature row an image model declares.

The model is a linear discriminant analysis on scikit-learn's 8x8 digits (values 0..16,
light ink on a dark ground); its settings declare 8x8 grayscale images, inverted
and scaled to 16, so a drawing in dark ink on white reaches it as a digit.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image

from flaskserve import testing
from flaskserve.app import create_app
from flaskserve.settings import load_settings

MAX_PIXELS = 200 * 200


@pytest.fixture(scope="module")
def digits() -> tuple[Any, Any]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images, data.target


@pytest.fixture(scope="module")
def digit_model(digits: tuple[Any, Any]) -> Any:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    images, target = digits
    # Linear, with probabilities, and fit in closed form: far quicker than a logistic regression here.
    return LinearDiscriminantAnalysis().fit(images.reshape(len(images), -1), target)


@pytest.fixture(scope="module")
def image_client(
    tmp_path_factory: pytest.TempPathFactory, digit_model: Any, iris_classifier: Any
) -> FlaskClient:
    root: Path = testing.write_repository(
        tmp_path_factory.mktemp("image-repository"),
        {"digits": {"1": (digit_model, ".skops")}, "iris": {"1": (iris_classifier, ".skops")}},
    )
    image = {"width": 8, "height": 8, "scale": 16, "invert": True, "max_pixels": MAX_PIXELS}
    settings = load_settings(
        None, model_path=root, default_model="digits", models={"digits": {"image": image}}
    )
    return create_app(settings).test_client()


def _drawing(pixels: Any, fmt: str = "PNG", size: int = 64) -> bytes:
    """A digit of the data set as a user's drawing: dark ink on white, ``size`` pixels wide."""
    ink = np.round(255 - np.asarray(pixels) * (255 / 16)).astype(np.uint8)
    image = Image.fromarray(ink, mode="L").resize((size, size), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [pytest.param("PNG", "image/png", id="PNG"), pytest.param("JPEG", "image/jpeg", id="JPEG")],
)
def test_an_image_body_is_read_as_the_digit_it_shows(
    image_client: FlaskClient, digits: tuple[Any, Any], digit_model: Any, fmt: str, content_type: str
) -> None:
    images, _ = digits
    answer = image_client.post(
        "/models/digits/predict", data=_drawing(images[0], fmt), content_type=content_type
    )

    assert answer.status_code == 200
    assert answer.get_json() == {"prediction": int(digit_model.predict(images[0].reshape(1, -1))[0])}


def test_a_png_becomes_exactly_the_row_the_model_was_trained_on(
    image_client: FlaskClient, digits: tuple[Any, Any], digit_model: Any
) -> None:
    images, _ = digits
    answer = image_client.post(
        "/models/digits/predict?method=predict_proba",
        data=_drawing(images[5], size=8),
        content_type="image/png",
    )

    expected = digit_model.predict_proba(np.round(images[5] * (255 / 16)).reshape(1, -1) * (16 / 255))[0]
    got = answer.get_json()["prediction"]
    assert [got[str(c)] for c in digit_model.classes_] == pytest.approx(expected.tolist(), abs=1e-9)


def test_a_form_upload_is_read_from_its_file_field(
    image_client: FlaskClient, digits: tuple[Any, Any]
) -> None:
    images, target = digits
    upload = {"file": (io.BytesIO(_drawing(images[3])), "digit.png", "application/octet-stream")}
    answer = image_client.post("/predict", data=upload, content_type="multipart/form-data")

    assert answer.status_code == 200
    assert answer.get_json() == {"prediction": int(target[3])}


def test_an_image_is_explained_like_a_row(image_client: FlaskClient, digits: tuple[Any, Any]) -> None:
    images, target = digits
    answer = image_client.post("/models/digits/explain", data=_drawing(images[3]), content_type="image/png")

    (entry,) = answer.get_json()["explanations"]
    assert entry["output"] == int(target[3])
    assert len(entry["contributions"]) == 64
    assert abs(entry["base_value"] + sum(entry["contributions"].values()) - entry["value"]) <= 1e-6


def _huge_png() -> bytes:
    out = io.BytesIO()
    Image.new("L", (1000, 1000), color=255).save(out, format="PNG", optimize=True)
    return out.getvalue()


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status", "code"),
    [
        pytest.param(
            "/models/digits/predict",
            b"\x89PNG\r\n\x1a\nnot really",
            "image/png",
            400,
            "invalid_value",
            id="corrupt",
        ),
        pytest.param(
            "/models/digits/predict", b"GIF89a....", "image/png", 400, "invalid_value", id="a GIF as PNG"
        ),
        pytest.param(
            "/models/digits/predict", _huge_png(), "image/png", 400, "limit_exceeded", id="too many pixels"
        ),
        pytest.param(
            "/models/iris/predict",
            b"\x89PNG\r\n\x1a\n",
            "image/png",
            415,
            "unsupported_media_type",
            id="no image model",
        ),
    ],
)
def test_images_that_cannot_be_read_are_refused_saying_why(
    image_client: FlaskClient, path: str, body: bytes, content_type: str, status: int, code: str
) -> None:
    answer = image_client.post(path, data=body, content_type=content_type)

    assert answer.status_code == status
    assert answer.get_json()["code"] == code


def test_a_form_without_a_file_field_is_refused(image_client: FlaskClient) -> None:
    answer = image_client.post("/predict", data={"image": "x"}, content_type="multipart/form-data")

    assert answer.status_code == 400
    assert "'file'" in answer.get_json()["error"]
