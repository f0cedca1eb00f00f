"""Images in: PNG and JPEG bodies and form uploads become the feature row an image model declares.

The model is a linear discriminant analysis on scikit-learn's 8x8 digits (values 0..16,
light ink on a dark ground); its settings declare 8x8 grayscale images, inverted
and scaled to 16, so a drawing in dark ink on white reaches it as a digit.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image

from flaskserve import testing
from flaskserve.app import create_app
from flaskserve.protocols.wire import WireRequest
from flaskserve.runtime import get_runtime
from flaskserve.settings import RequestLimits, load_settings
from live_server import served_in_thread

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


# Images inside tensor requests: KServe V1 {"b64": ...} rows and Open Inference Protocol BYTES tensors.


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _simple_answers(client: FlaskClient, drawings: list[bytes]) -> list[Any]:
    """What the simple protocol answers for each drawing sent as the body: what every protocol must say."""
    answers = [
        client.post(
            "/models/digits/predict", data=d, content_type=Image.open(io.BytesIO(d)).get_format_mimetype()
        )
        for d in drawings
    ]
    return [answer.get_json()["prediction"] for answer in answers]


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(lambda data: {"b64": _b64(data)}, id="a b64 value"),
        pytest.param(lambda data: {"image_bytes": {"b64": _b64(data)}}, id="a named b64 input"),
    ],
)
def test_v1_rows_of_base64_images_are_read_like_image_bodies(
    image_client: FlaskClient, digits: tuple[Any, Any], row: Callable[[bytes], Any]
) -> None:
    images, _ = digits
    drawings = [_drawing(images[i]) for i in (0, 3, 7)] + [_drawing(images[11], "JPEG")]

    answer = image_client.post("/v1/models/digits:predict", json={"instances": [row(d) for d in drawings]})

    assert answer.status_code == 200
    assert answer.get_json() == {"predictions": _simple_answers(image_client, drawings)}


def test_v1_explains_a_base64_image(image_client: FlaskClient, digits: tuple[Any, Any]) -> None:
    images, _ = digits
    drawing = _drawing(images[3])

    answer = image_client.post("/v1/models/digits:explain", json={"instances": [{"b64": _b64(drawing)}]})

    body = answer.get_json()
    assert body["predictions"] == _simple_answers(image_client, [drawing])
    (entry,) = body["explanations"]
    assert abs(entry["base_value"] + sum(entry["contributions"].values()) - entry["value"]) <= 1e-6


def test_v2_json_bytes_tensor_of_base64_images_is_read_like_image_bodies(
    image_client: FlaskClient, digits: tuple[Any, Any]
) -> None:
    images, _ = digits
    drawings = [_drawing(images[i]) for i in (1, 2)]
    request = {
        "inputs": [{"name": "image", "shape": [2], "datatype": "BYTES", "data": [_b64(d) for d in drawings]}],
        "outputs": [{"name": "predict"}],
    }

    answer = image_client.post("/v2/models/digits/infer", json=request)

    assert answer.status_code == 200
    (output,) = answer.get_json()["outputs"]
    assert output["data"] == _simple_answers(image_client, drawings)


@pytest.fixture(scope="module")
def image_server(image_client: FlaskClient) -> Iterator[str]:
    with served_in_thread(image_client.application) as address:
        yield address


def test_tritonclient_sends_png_files_as_a_binary_bytes_tensor(
    image_server: str, image_client: FlaskClient, digits: tuple[Any, Any]
) -> None:
    import tritonclient.http as httpclient

    images, _ = digits
    drawings = [_drawing(images[i]) for i in (4, 5, 6)]
    client = httpclient.InferenceServerClient(image_server)
    try:
        tensor = httpclient.InferInput("image", [len(drawings), 1], "BYTES")
        tensor.set_data_from_numpy(np.array(drawings, dtype=object).reshape(-1, 1), binary_data=True)
        result = client.infer("digits", [tensor], outputs=[httpclient.InferRequestedOutput("predict")])
        got = result.as_numpy("predict").tolist()
    finally:
        client.close()

    assert got == _simple_answers(image_client, drawings)


def _v2_images(data: list[Any], shape: list[int] | None = None) -> dict[str, Any]:
    return {"inputs": [{"name": "image", "shape": shape or [len(data)], "datatype": "BYTES", "data": data}]}


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height), color=255).save(out, format="PNG")
    return out.getvalue()


# Each under MAX_PIXELS alone (150 * 150 = 22500), over it together: the limit is per request.
_TWO_HALF_BUDGETS = [_b64(_png(150, 150))] * 2


@pytest.mark.parametrize(
    ("path", "body", "code", "says"),
    [
        pytest.param(
            "/v1/models/digits:predict",
            {"instances": [{"b64": _b64(b"GIF89a....")}]},
            "invalid_value",
            "neither a PNG nor a JPEG",
            id="v1 a GIF",
        ),
        pytest.param(
            "/v1/models/digits:predict",
            {"instances": [{"b64": _b64(b"\x89PNG\r\n\x1a\nnot really")}]},
            "invalid_value",
            "image 0 is not a readable PNG",
            id="v1 a corrupt PNG",
        ),
        pytest.param(
            "/v1/models/digits:predict",
            {"instances": [{"b64": _TWO_HALF_BUDGETS[0]}, [0] * 64]},
            "shape_mismatch",
            "not a mix",
            id="v1 images mixed with pixel rows",
        ),
        pytest.param(
            "/v1/models/digits:predict",
            {"instances": [{"b64": "not base64!"}]},
            "invalid_value",
            "not valid base64",
            id="v1 not base64",
        ),
        pytest.param(
            "/v1/models/digits:predict",
            {"instances": [{"b64": b} for b in _TWO_HALF_BUDGETS]},
            "limit_exceeded",
            "per request",
            id="v1 too many pixels together",
        ),
        pytest.param(
            "/v2/models/digits/infer",
            _v2_images(_TWO_HALF_BUDGETS),
            "limit_exceeded",
            "image 1 is 150x150 pixels",
            id="v2 too many pixels together",
        ),
        pytest.param(
            "/v2/models/digits/infer",
            _v2_images(["not base64!"]),
            "invalid_value",
            "is not base64",
            id="v2 not base64",
        ),
        pytest.param(
            "/v2/models/digits/infer",
            _v2_images(_TWO_HALF_BUDGETS, [1, 2]),
            "shape_mismatch",
            "[rows] or [rows, 1]",
            id="v2 images side by side",
        ),
    ],
)
def test_images_in_tensor_requests_that_cannot_be_read_are_refused_saying_why(
    image_client: FlaskClient, path: str, body: Any, code: str, says: str
) -> None:
    answer = image_client.post(path, json=body)

    assert answer.status_code == 400
    assert answer.get_json()["code"] == code
    assert says in answer.get_json()["error"]


def test_pixel_rows_still_reach_an_image_model_over_v1(
    image_client: FlaskClient, digits: tuple[Any, Any], digit_model: Any
) -> None:
    images, _ = digits

    answer = image_client.post("/v1/models/digits:predict", json={"instances": [images[9].ravel().tolist()]})

    assert answer.get_json() == {"predictions": digit_model.predict(images[9].reshape(1, -1)).tolist()}


def test_grpc_bytes_contents_holding_png_files_decode_to_the_rows_of_the_image_bodies(
    image_client: FlaskClient, digits: tuple[Any, Any]
) -> None:
    from flaskserve.protocols.image import image_matrix
    from flaskserve.rpc.codec import GrpcProtocol
    from flaskserve.rpc.proto import grpc_predict_v2_pb2 as pb

    images, _ = digits
    drawings = [_drawing(images[i]) for i in (8, 9)]
    model = get_runtime(image_client.application).registry.resolve("digits", None)
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="image", datatype="BYTES", shape=[2], contents=pb.InferTensorContents(bytes_contents=drawings)
    )
    message = pb.ModelInferRequest(model_name="digits", inputs=[tensor])

    decoded = GrpcProtocol().decode(WireRequest(message.SerializeToString()), model, RequestLimits())

    expected = np.vstack([image_matrix(d, "image/png", model) for d in drawings])
    assert np.array_equal(decoded.matrix, expected)


def test_the_playground_form_says_which_models_take_images(image_client: FlaskClient) -> None:
    digits_form = image_client.get("/ui/api/models/digits/form").get_json()
    iris_form = image_client.get("/ui/api/models/iris/form").get_json()

    assert (digits_form["image"], iris_form["image"]) == (True, False)


def test_base64_images_in_simple_json_are_read_like_image_bodies(
    image_client: FlaskClient, digits: tuple[Any, Any]
) -> None:
    images, _ = digits
    drawings = [_drawing(images[i]) for i in (12, 13)]
    expected = _simple_answers(image_client, drawings)

    one = image_client.post("/models/digits/predict", json={"b64": _b64(drawings[0])})
    several = image_client.post(
        "/models/digits/predict", json={"instances": [{"b64": _b64(d)} for d in drawings]}
    )

    assert one.get_json() == {"prediction": expected[0]}
    assert several.get_json() == {"predictions": expected}
