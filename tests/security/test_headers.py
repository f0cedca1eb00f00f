"""Security headers on every response, on a small app with the same route shapes as the real one."""

from __future__ import annotations

import pytest
from flask import Flask, Response
from flask.testing import FlaskClient

from flaskserve.access import PREDICT_FROM_PATH, READ
from flaskserve.app import FlaskserveApp
from flaskserve.security.headers import DEFAULT_CONTENT_SECURITY_POLICY, SecurityHeaders
from flaskserve.web.errors import register_error_handlers

PAGE = "<!doctype html><title>flaskserve</title>"


def make_app(*, tls: bool = False) -> Flask:
    app = FlaskserveApp("headers-test")
    register_error_handlers(app)
    SecurityHeaders().init_app(app, tls=tls)
    app.add_url_rule("/models", "models", lambda: {"models": ["iris"]}, access=READ)
    app.add_url_rule(
        "/models/<name>/predict",
        "predict",
        lambda name: {"predictions": [0]},
        methods=["POST"],
        access=PREDICT_FROM_PATH,
    )
    app.add_url_rule(
        "/v2/models/<name>/infer",
        "infer",
        lambda name: {"outputs": []},
        methods=["POST"],
        access=PREDICT_FROM_PATH,
    )
    app.add_url_rule("/ui", "ui", lambda: Response(PAGE, mimetype="text/html"), access=READ)
    app.add_url_rule(
        "/docs",
        "docs",
        lambda: Response(
            PAGE, mimetype="text/html", headers={"Content-Security-Policy": "default-src 'none'"}
        ),
    )
    return app


@pytest.fixture
def client() -> FlaskClient:
    return make_app().test_client()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/models", id="json"),
        pytest.param("GET", "/ui", id="html"),
        pytest.param("GET", "/no/such/route", id="error"),
        pytest.param("POST", "/models/iris/predict", id="prediction"),
    ],
)
def test_every_response_forbids_content_sniffing(client: FlaskClient, method: str, path: str) -> None:
    response = client.open(path, method=method, json={} if method == "POST" else None)

    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/models/iris/predict", id="simple protocol"),
        pytest.param("/v2/models/iris/infer", id="v2 protocol"),
    ],
)
def test_predictions_are_never_cached(client: FlaskClient, path: str) -> None:
    response = client.post(path, json={})

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


def test_metadata_may_be_cached(client: FlaskClient) -> None:
    assert "Cache-Control" not in client.get("/models").headers


def test_html_pages_get_a_content_security_policy(client: FlaskClient) -> None:
    response = client.get("/ui")

    assert response.headers["Content-Security-Policy"] == DEFAULT_CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_a_policy_the_page_sets_itself_is_kept(client: FlaskClient) -> None:
    assert client.get("/docs").headers["Content-Security-Policy"] == "default-src 'none'"


def test_json_responses_get_no_content_security_policy(client: FlaskClient) -> None:
    assert "Content-Security-Policy" not in client.get("/models").headers


@pytest.mark.parametrize(
    ("tls", "expected"),
    [
        pytest.param(True, "max-age=31536000", id="with tls"),
        pytest.param(False, None, id="without tls"),
    ],
)
def test_strict_transport_security_is_sent_only_with_tls(tls: bool, expected: str | None) -> None:
    response = make_app(tls=tls).test_client().get("/models")

    assert response.headers.get("Strict-Transport-Security") == expected
