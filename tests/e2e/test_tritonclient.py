"""Triton's own HTTP client against a real server: JSON and binary tensors, metadata, classification.

The app runs under Werkzeug's server in a thread: tritonclient needs real
sockets, and this starts in milliseconds where a gunicorn subprocess takes seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flaskserve import testing
from flaskserve.app import create_app
from flaskserve.settings import Settings
from live_server import served_in_thread

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture(scope="module")
def server_url(repository: Any) -> Iterator[str]:
    from flaskserve.settings import load_settings

    settings: Settings = load_settings(None, model_path=repository, allow_pickle=True, default_model="linear")
    with served_in_thread(create_app(settings)) as address:
        yield address


@pytest.fixture
def triton(server_url: str) -> Iterator[Any]:
    client = httpclient.InferenceServerClient(server_url)
    try:
        yield client
    finally:
        client.close()


def _predict_simple(server_url: str, model: str, rows: np.ndarray, method: str) -> Any:
    import requests

    response = requests.post(
        f"http://{server_url}/models/{model}/versions/1/predict?method={method}",
        json={"instances": rows.tolist()},
        timeout=10,
    )
    assert response.status_code == 200
    return response.json()["predictions"]


def test_health_metadata_and_readiness(triton: Any) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("iris")
    assert triton.is_model_ready("iris", "1")
    assert not triton.is_model_ready("nope")
    assert "binary_tensor_data" in triton.get_server_metadata()["extensions"]

    metadata = triton.get_model_metadata("iris", "1")

    assert metadata["inputs"][0]["name"] == "input"
    assert metadata["inputs"][0]["shape"] == [-1, 4]
    assert [o["name"] for o in metadata["outputs"]][:2] == ["predict", "predict_proba"]


Call = Callable[..., Any]


@pytest.mark.parametrize("binary", [pytest.param(False, id="json"), pytest.param(True, id="binary")])
def test_regressor_answers_equal_model_predict(
    triton: Any, server_url: str, diabetes_regressor: Any, binary: bool
) -> None:
    rows = testing.diabetes_rows(5)
    tensor = httpclient.InferInput("input", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    wanted = [httpclient.InferRequestedOutput("predict", binary_data=binary)]

    result = triton.infer("diabetes", [tensor], model_version="1", outputs=wanted, request_id="r-1")

    np.testing.assert_allclose(result.as_numpy("predict"), diabetes_regressor.predict(rows))
    np.testing.assert_allclose(
        result.as_numpy("predict"), _predict_simple(server_url, "diabetes", rows, "predict")
    )
    assert result.get_response()["id"] == "r-1"


@pytest.mark.parametrize("binary", [pytest.param(False, id="json"), pytest.param(True, id="binary")])
def test_classifier_labels_and_probabilities_equal_model_predict(
    triton: Any, server_url: str, iris_classifier: Any, binary: bool
) -> None:
    frame, _ = testing.iris_frame()
    rows = frame.iloc[[0, 60, 120]].to_numpy(dtype=np.float32)
    tensor = httpclient.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    wanted = [
        httpclient.InferRequestedOutput("predict", binary_data=binary),
        httpclient.InferRequestedOutput("predict_proba", binary_data=binary),
    ]

    result = triton.infer("iris", [tensor], model_version="1", outputs=wanted)

    as_sent = pd.DataFrame(rows.astype(np.float64), columns=frame.columns)
    labels = [label.decode() if isinstance(label, bytes) else label for label in result.as_numpy("predict")]
    assert labels == iris_classifier.predict(as_sent).tolist()
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), iris_classifier.predict_proba(as_sent), rtol=1e-6
    )
    simple_maps = _predict_simple(server_url, "iris", rows.astype(np.float64), "predict_proba")
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), [list(m.values()) for m in simple_maps], rtol=1e-6
    )


def test_all_outputs_come_back_binary_when_none_are_named(triton: Any, iris_pipeline: Any) -> None:
    rows = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float64)
    tensor = httpclient.InferInput("input", [1, 4], "FP64")
    tensor.set_data_from_numpy(rows)

    result = triton.infer("iris", [tensor])

    outputs = result.get_response()["outputs"]
    assert all("binary_data_size" in output["parameters"] for output in outputs)
    assert result.as_numpy("predict").tolist() == [0]
    assert result.get_response()["model_version"] == "2"


def test_classification_returns_top_k_labels(triton: Any, iris_classifier: Any) -> None:
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float64)
    tensor = httpclient.InferInput("input", [2, 4], "FP64")
    tensor.set_data_from_numpy(rows)
    wanted = [httpclient.InferRequestedOutput("predict_proba", class_count=2)]

    result = triton.infer("iris", [tensor], model_version="1", outputs=wanted)

    top = result.as_numpy("predict_proba")
    assert top.shape == (2, 2)
    first = [entry.decode().split(":") for entry in top[:, 0]]
    assert [label for _, _, label in first] == ["setosa", "virginica"]
    assert [int(index) for _, index, _ in first] == [0, 2]


def test_bad_input_is_a_client_error_not_a_crash(triton: Any) -> None:
    tensor = httpclient.InferInput("features", [1, 4], "FP64")
    tensor.set_data_from_numpy(np.zeros((1, 4)))

    with pytest.raises(InferenceServerException, match="missing input 'input'"):
        triton.infer("iris", [tensor])
