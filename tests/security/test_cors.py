"""CORS: off by default; configured origins may call from a browser, others may not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from flaskserve.app import create_app
from flaskserve.settings import Settings

SITE = "https://app.example.com"


def client(make_settings: Callable[..., Settings], tmp_path: Path, **overrides: Any) -> FlaskClient:
    return create_app(make_settings(keys_file=tmp_path / "keys.json", **overrides)).test_client()


def test_cors_is_off_by_default(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    response = client(make_settings, tmp_path).get("/models", headers={"Origin": SITE})

    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_configured_origin_may_read_responses(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    app = client(make_settings, tmp_path, cors_origins=[SITE + "/"])

    allowed = app.get("/models", headers={"Origin": SITE})
    other = app.get("/models", headers={"Origin": "https://evil.example"})

    assert allowed.headers["Access-Control-Allow-Origin"] == SITE
    assert "RateLimit-Remaining" in allowed.headers["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Credentials" not in allowed.headers
    assert "Origin" in allowed.headers["Vary"]
    assert "Access-Control-Allow-Origin" not in other.headers


def test_a_preflight_is_answered_without_a_key(
    make_settings: Callable[..., Settings], tmp_path: Path, make_key: Callable[..., str]
) -> None:
    make_key("someone", "predict")
    app = client(make_settings, tmp_path, cors_origins=["*"])

    response = app.options(
        "/models/linear/predict",
        headers={
            "Origin": SITE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert app.post("/models/linear/predict", json={"x": 1, "y": 2}).status_code == 401
