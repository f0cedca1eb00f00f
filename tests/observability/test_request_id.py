"""X-Request-ID: accepted when safe, generated otherwise, returned on every response."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(
    ("given", "echoed"),
    [
        pytest.param("abc-123", True, id="letters digits dash"),
        pytest.param("trace.2024_01-x", True, id="dots and underscores"),
        pytest.param("a" * 128, True, id="longest accepted"),
        pytest.param("a" * 129, False, id="too long"),
        pytest.param("has space", False, id="space"),
        pytest.param('quote"d', False, id="quote"),
        pytest.param("\u00fcber", False, id="non-ascii"),
        pytest.param("", False, id="empty"),
    ],
)
def test_a_client_request_id_is_echoed_only_when_safe(client: FlaskClient, given: str, echoed: bool) -> None:
    response = client.post("/predict", json={"x": 1, "y": 2}, headers={"X-Request-ID": given})
    assert response.status_code == 200
    returned = response.headers["X-Request-ID"]
    if echoed:
        assert returned == given
    else:
        assert GENERATED.fullmatch(returned)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        pytest.param("GET", "/v2/health/live", None, 200, id="health"),
        pytest.param("GET", "/metrics", None, 200, id="metrics"),
        pytest.param("GET", "/no/such/route", None, 404, id="unknown route"),
        pytest.param("POST", "/models/nope/predict", {"x": 1}, 404, id="unknown model"),
        pytest.param("POST", "/predict", {"x": 1}, 400, id="invalid input"),
        pytest.param("POST", "/models/exploding/predict", {"x0": -1, "x1": 1}, 500, id="model raised"),
        pytest.param("DELETE", "/predict", None, 405, id="wrong method"),
    ],
)
def test_every_response_carries_a_request_id(
    client: FlaskClient, method: str, path: str, body: object, status: int
) -> None:
    response = client.open(path, method=method, json=body)
    assert response.status_code == status
    assert GENERATED.fullmatch(response.headers["X-Request-ID"])


def test_each_request_gets_its_own_id(client: FlaskClient) -> None:
    ids = {client.get("/v2/health/live").headers["X-Request-ID"] for _ in range(5)}
    assert len(ids) == 5
