"""Every bad request gets a clear JSON error with the right 4xx, never a traceback or a path."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

IRIS_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def _post(client: FlaskClient, path: str, body: Any, content_type: str = "application/json") -> Any:
    data = body if isinstance(body, (bytes, str)) else __import__("json").dumps(body)
    return client.post(path, data=data, content_type=content_type)


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status", "code", "says"),
    [
        pytest.param(
            "/predict",
            b"{not json",
            "application/json",
            400,
            "malformed_request",
            "not valid JSON",
            id="malformed JSON",
        ),
        pytest.param("/predict", b"", "application/json", 400, "malformed_request", "empty", id="empty body"),
        pytest.param(
            "/predict",
            {"x": 1, "y": 2},
            "text/plain",
            415,
            "unsupported_media_type",
            "application/json",
            id="wrong content type",
        ),
        pytest.param(
            "/predict", {"x": 1}, "application/json", 400, "missing_feature", "'y'", id="missing feature"
        ),
        pytest.param(
            "/predict",
            {"x": 1, "y": 2, "z": 3},
            "application/json",
            400,
            "unknown_feature",
            "'z'",
            id="unknown feature",
        ),
        pytest.param(
            "/predict",
            {"instances": [[1, 2, 3]]},
            "application/json",
            400,
            "wrong_feature_count",
            "expects 2",
            id="wrong feature count",
        ),
        pytest.param(
            "/predict",
            {"x": "1", "y": 2},
            "application/json",
            400,
            "invalid_value",
            "feature 'x' in row 0 must be a number; got string",
            id="string where a number belongs",
        ),
        pytest.param(
            "/predict",
            {"x": True, "y": 2},
            "application/json",
            400,
            "invalid_value",
            "boolean",
            id="boolean where a number belongs",
        ),
        pytest.param(
            "/predict", {"x": None, "y": 2}, "application/json", 400, "invalid_value", "null", id="null value"
        ),
        pytest.param(
            "/predict",
            {"x": [1], "y": 2},
            "application/json",
            400,
            "invalid_value",
            "array",
            id="nested value",
        ),
        pytest.param(
            "/predict", b'{"x": 1e999, "y": 2}', "application/json", 400, None, None, id="overflowing number"
        ),
        pytest.param(
            "/predict",
            b'{"x": NaN, "y": 2}',
            "application/json",
            400,
            "malformed_request",
            None,
            id="NaN literal",
        ),
        pytest.param(
            "/predict",
            {"instances": [[1, 2], [3]]},
            "application/json",
            400,
            "wrong_feature_count",
            "row 1",
            id="ragged rows",
        ),
        pytest.param(
            "/predict",
            {"instances": [{"x": 1, "y": 2}, [1, 2]]},
            "application/json",
            400,
            "shape_mismatch",
            "not a mix",
            id="mixed row forms",
        ),
        pytest.param(
            "/predict", {"instances": []}, "application/json", 400, "shape_mismatch", "no rows", id="no rows"
        ),
        pytest.param(
            "/predict",
            {"instances": "rows"},
            "application/json",
            400,
            "shape_mismatch",
            "list",
            id="instances not a list",
        ),
        pytest.param(
            "/predict", 42, "application/json", 400, "malformed_request", "JSON object", id="body is a number"
        ),
        pytest.param(
            "/predict",
            {"instances": [[1, 2]], "extra": 1},
            "application/json",
            400,
            "malformed_request",
            "'extra'",
            id="stray key beside instances",
        ),
        pytest.param(
            "/predict",
            {"x": 1, "y": 2, "method": "predict_proba"},
            "application/json",
            400,
            "unsupported_method",
            "offers predict",
            id="method the model lacks",
        ),
        pytest.param(
            "/predict",
            {"x": 1, "y": 2, "method": 3},
            "application/json",
            400,
            "malformed_request",
            "'method' must be a string",
            id="method not a string",
        ),
        pytest.param(
            "/predict",
            b"[" * 200 + b"]" * 200,
            "application/json",
            400,
            "limit_exceeded",
            "nested",
            id="deeply nested JSON",
        ),
        pytest.param(
            "/models/nope/predict",
            {"x": 1},
            "application/json",
            404,
            "model_not_found",
            "served models",
            id="unknown model",
        ),
        pytest.param(
            "/models/iris/versions/9/predict",
            IRIS_ROW,
            "application/json",
            404,
            "version_not_found",
            "versions: 1, 2",
            id="unknown version",
        ),
        pytest.param("/no/such/route", {}, "application/json", 404, "not_found", None, id="unknown route"),
    ],
)
def test_bad_requests_get_json_errors(
    client: FlaskClient,
    repository: Any,
    path: str,
    body: Any,
    content_type: str,
    status: int,
    code: str | None,
    says: str | None,
) -> None:
    response = _post(client, path, body, content_type)

    assert response.status_code == status
    assert response.mimetype == "application/json"
    error = response.get_json()
    assert isinstance(error["error"], str)
    assert error["error"]
    if code is not None:
        assert error["code"] == code
    if says is not None:
        assert says in error["error"]
    assert "Traceback" not in error["error"]
    assert str(repository) not in error["error"]


def test_wrong_http_method_is_405_json(client: FlaskClient) -> None:
    response = client.get("/predict")

    assert response.status_code == 405
    assert response.get_json()["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_body_over_the_limit_is_413(make_settings: Any) -> None:
    from flaskserve.app import create_app

    client = create_app(make_settings(limits={"max_body_bytes": 100})).test_client()

    response = client.post(
        "/predict", data=b'{"x": 1, "y": ' + b" " * 200 + b"2}", content_type="application/json"
    )

    assert response.status_code == 413
    assert response.get_json()["code"] == "payload_too_large"


def test_chunked_body_over_the_limit_is_413_not_truncated(make_settings: Any) -> None:
    from flaskserve.app import create_app

    client = create_app(make_settings(limits={"max_body_bytes": 100})).test_client()

    def chunks() -> Any:
        yield b'{"x": 1, "y": '
        for _ in range(50):
            yield b"    "
        yield b"2}"

    response = client.post(
        "/predict",
        input_stream=__import__("io").BytesIO(b"".join(chunks())),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        # What a WSGI server that de-chunks the body (gunicorn does) tells the app.
        environ_overrides={"wsgi.input_terminated": True},
    )

    assert response.status_code == 413


def test_too_many_rows_is_refused(make_settings: Any) -> None:
    from flaskserve.app import create_app

    client = create_app(make_settings(limits={"max_rows": 3})).test_client()

    response = client.post("/predict", json={"instances": [[1, 2]] * 4})

    assert response.status_code == 400
    assert response.get_json()["code"] == "limit_exceeded"


def test_model_failure_is_a_500_with_an_error_id_and_the_server_goes_on(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    failed = client.post("/models/exploding/predict", json={"instances": [[-1, 2]]})
    after = client.post("/models/exploding/predict", json={"instances": [[1, 2]]})

    assert failed.status_code == 500
    body = failed.get_json()
    assert body["code"] == "prediction_failed"
    error_id = failed.headers["X-Error-Id"]
    assert error_id in body["error"]
    assert "negative input" not in body["error"]
    assert any(getattr(r, "error_id", None) == error_id and r.exc_info for r in caplog.records)
    assert after.status_code == 200
    assert after.get_json() == {"predictions": [3.0]}


def test_no_default_model_among_several_is_a_clear_404(make_settings: Any) -> None:
    from flaskserve.app import create_app

    client = create_app(make_settings(default_model=None)).test_client()

    response = client.post("/predict", json={"x": 1, "y": 2})

    assert response.status_code == 404
    assert "/models/NAME/predict" in response.get_json()["error"]
