"""API-key authentication, on a small app with the same route shapes as the real one."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, g, request
from flask.testing import FlaskClient

from flaskserve.access import (
    ADMIN,
    METRICS,
    OPEN,
    PREDICT_DEFAULT,
    PREDICT_FROM_HEADER,
    PREDICT_FROM_PATH,
    READ,
)
from flaskserve.app import FlaskserveApp
from flaskserve.security.auth import ApiKeyAuth
from flaskserve.security.keys import KeyStore
from flaskserve.web.errors import register_error_handlers

IRIS = "/models/iris/predict"
BODY = {"rows": [[1, 2, 3, 4]]}


def make_app(store: KeyStore, default_model: Callable[[], str | None] | None = None) -> Flask:
    app = FlaskserveApp("auth-test")
    register_error_handlers(app)
    ApiKeyAuth().init_app(app, store, default_model=default_model)

    def predicted(name: str | None = None) -> dict[str, object]:
        return {"model": name, "body": request.get_json(), "key": g.get("api_key_name")}

    app.add_url_rule("/livez", "livez", lambda: {"status": "live"}, access=OPEN)
    app.add_url_rule("/models", "models", lambda: {"models": ["iris", "wine"]}, access=READ)
    app.add_url_rule("/metrics", "metrics", lambda: "requests_total 1\n", access=METRICS)
    app.add_url_rule("/predict", "predict", predicted, methods=["POST"], access=PREDICT_DEFAULT)
    app.add_url_rule(
        "/models/<name>/predict", "model_predict", predicted, methods=["POST"], access=PREDICT_FROM_PATH
    )
    app.add_url_rule("/invocations", "invocations", predicted, methods=["POST"], access=PREDICT_FROM_HEADER)
    app.add_url_rule(
        "/v2/repository/models/<name>/load",
        "load",
        lambda name: {"loaded": name},
        methods=["POST"],
        access=ADMIN,
    )
    # Declares no access: admin only.
    app.add_url_rule("/debug/state", "debug_state", lambda: {"state": "internal"})
    return app


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys.json")


@pytest.fixture
def keys(store: KeyStore) -> dict[str, str]:
    """One key per scope set, by name."""
    return {
        "predict": store.create("predict", ["predict"]),
        "iris": store.create("iris", ["predict:iris"]),
        "read": store.create("read", ["read"]),
        "metrics": store.create("metrics", ["metrics"]),
        "admin": store.create("admin", ["admin"]),
    }


@pytest.fixture
def client(store: KeyStore, keys: dict[str, str]) -> FlaskClient:
    return make_app(store).test_client()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_without_keys_every_route_is_open(store: KeyStore) -> None:
    client = make_app(store).test_client()

    assert client.post(IRIS, json=BODY).status_code == 200
    assert client.get("/debug/state").status_code == 200


def test_probes_need_no_key(client: FlaskClient) -> None:
    assert client.get("/livez").status_code == 200


def test_a_request_without_a_key_is_unauthorized(client: FlaskClient) -> None:
    response = client.post(IRIS, json=BODY)

    assert response.status_code == 401
    assert response.json == {
        "error": "a valid API key is required: send 'Authorization: Bearer <key>'",
        "code": "unauthorized",
    }
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="flaskserve"'


def test_a_wrong_key_is_unauthorized(client: FlaskClient) -> None:
    response = client.post(IRIS, json=BODY, headers=bearer("fs_not-a-real-key"))

    assert response.status_code == 401
    assert response.json is not None
    assert response.json["code"] == "unauthorized"
    assert "not valid" in response.json["error"]
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="flaskserve", error="invalid_token"'


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda key: {"Authorization": f"Bearer {key}"}, id="bearer"),
        pytest.param(lambda key: {"Authorization": f"bearer  {key} "}, id="bearer in lower case"),
        pytest.param(lambda key: {"X-API-Key": key}, id="x-api-key"),
    ],
)
def test_a_valid_key_is_accepted_from_either_header(
    client: FlaskClient, keys: dict[str, str], headers: Callable[[str], dict[str, str]]
) -> None:
    response = client.post(IRIS, json=BODY, headers=headers(keys["predict"]))

    assert response.status_code == 200
    assert response.json == {"model": "iris", "body": BODY, "key": "predict"}


@pytest.mark.parametrize(
    "where",
    [
        pytest.param(lambda key: ({"api_key": key}, {}), id="query parameter"),
        pytest.param(lambda key: ({}, {"Authorization": f"Basic {key}"}), id="basic scheme"),
        pytest.param(lambda key: ({}, {"Authorization": key}), id="no scheme"),
    ],
)
def test_a_key_anywhere_else_is_not_accepted(
    client: FlaskClient,
    keys: dict[str, str],
    where: Callable[[str], tuple[dict[str, str], dict[str, str]]],
) -> None:
    query, headers = where(keys["admin"])

    response = client.post(IRIS, json=BODY, query_string=query, headers=headers)

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("key", "method", "path", "status"),
    [
        pytest.param("read", "GET", "/models", 200, id="read may list models"),
        pytest.param("read", "POST", IRIS, 403, id="read may not predict"),
        pytest.param("read", "GET", "/metrics", 403, id="read may not see metrics"),
        pytest.param("metrics", "GET", "/metrics", 200, id="metrics may see metrics"),
        pytest.param("metrics", "GET", "/models", 403, id="metrics may not list models"),
        pytest.param("predict", "POST", "/models/wine/predict", 200, id="predict may use any model"),
        pytest.param("predict", "GET", "/models", 403, id="predict may not list models"),
        pytest.param("iris", "POST", IRIS, 200, id="predict:iris may use iris"),
        pytest.param("iris", "POST", "/models/wine/predict", 403, id="predict:iris may not use wine"),
        pytest.param("iris", "POST", "/predict", 403, id="predict:iris may not use an unknown default"),
        pytest.param("predict", "POST", "/v2/repository/models/iris/load", 403, id="predict may not load"),
        pytest.param("admin", "POST", "/v2/repository/models/iris/load", 200, id="admin may load"),
        pytest.param("admin", "POST", IRIS, 200, id="admin may predict"),
        pytest.param("admin", "GET", "/metrics", 200, id="admin may see metrics"),
        pytest.param("read", "GET", "/debug/state", 403, id="a route not in the table needs admin"),
        pytest.param("admin", "GET", "/debug/state", 200, id="admin may use a route not in the table"),
    ],
)
def test_each_key_reaches_what_its_scopes_allow(
    client: FlaskClient, keys: dict[str, str], key: str, method: str, path: str, status: int
) -> None:
    response = client.open(
        path, method=method, json=BODY if method == "POST" else None, headers=bearer(keys[key])
    )

    assert response.status_code == status


def test_forbidden_names_the_scope_that_is_missing(client: FlaskClient, keys: dict[str, str]) -> None:
    response = client.post("/models/wine/predict", json=BODY, headers=bearer(keys["iris"]))

    assert response.status_code == 403
    assert response.json == {
        "error": "the API key 'iris' may not use this route: it needs scope 'predict:wine' or 'predict'",
        "code": "forbidden",
    }


@pytest.mark.parametrize(
    ("model", "status"),
    [
        pytest.param("iris", 200, id="the model the key is scoped to"),
        pytest.param("wine", 403, id="another model"),
    ],
)
def test_a_model_scoped_key_may_use_the_default_model_when_it_is_that_model(
    store: KeyStore, keys: dict[str, str], model: str, status: int
) -> None:
    client = make_app(store, default_model=lambda: model).test_client()

    assert client.post("/predict", json=BODY, headers=bearer(keys["iris"])).status_code == status


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({"X-Model-Name": "iris"}, 200, id="names the key's model"),
        pytest.param({"X-Model-Name": "wine"}, 403, id="names another model"),
        pytest.param({}, 403, id="names no model"),
    ],
)
def test_invocations_checks_the_model_its_header_names(
    client: FlaskClient, keys: dict[str, str], headers: dict[str, str], status: int
) -> None:
    response = client.post("/invocations", json=BODY, headers={**bearer(keys["iris"]), **headers})

    assert response.status_code == status


@pytest.mark.parametrize(
    ("key", "status"),
    [
        pytest.param(None, 401, id="without a key"),
        pytest.param("read", 404, id="with a key"),
    ],
)
def test_unknown_urls_need_a_key_before_they_are_not_found(
    client: FlaskClient, keys: dict[str, str], key: str | None, status: int
) -> None:
    response = client.get("/no/such/route", headers=bearer(keys[key]) if key else {})

    assert response.status_code == status


def test_a_wrong_method_with_a_key_is_not_allowed(client: FlaskClient, keys: dict[str, str]) -> None:
    assert client.get(IRIS, headers=bearer(keys["predict"])).status_code == 405


def test_cors_preflight_needs_no_key(client: FlaskClient) -> None:
    response = client.options(IRIS)

    assert response.status_code == 200
    assert "POST" in response.headers["Allow"]


class WatchedBody(io.BytesIO):
    """A request body that remembers whether anyone read it."""

    was_read = False

    def read(self, size: int | None = -1) -> bytes:
        self.was_read = True
        return super().read(size)

    def readinto(self, buffer: Any) -> int:
        self.was_read = True
        return super().readinto(buffer)


@pytest.mark.parametrize(
    ("key", "status", "read"),
    [
        pytest.param(None, 401, False, id="refused before its body is read"),
        pytest.param("predict", 200, True, id="read once the key is accepted"),
    ],
)
def test_a_request_body_is_read_only_after_the_key_is_checked(
    client: FlaskClient, keys: dict[str, str], key: str | None, status: int, read: bool
) -> None:
    body = WatchedBody(b'{"rows": [[1, 2, 3, 4]]}')

    response = client.post(
        IRIS,
        input_stream=body,
        content_type="application/json",
        headers=bearer(keys[key]) if key else {},
    )

    assert response.status_code == status
    assert body.was_read is read


def test_two_apps_keep_their_own_keys(tmp_path: Path) -> None:
    first, second = KeyStore(tmp_path / "a.json"), KeyStore(tmp_path / "b.json")
    first_key = first.create("first", ["predict"])
    second_key = second.create("second", ["predict"])
    first_client, second_client = make_app(first).test_client(), make_app(second).test_client()

    assert first_client.post(IRIS, json=BODY, headers=bearer(first_key)).status_code == 200
    assert first_client.post(IRIS, json=BODY, headers=bearer(second_key)).status_code == 401
    assert second_client.post(IRIS, json=BODY, headers=bearer(second_key)).status_code == 200
