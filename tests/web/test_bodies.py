"""The one body reader: every route that takes a body refuses, never truncates, what is over the limit.

Routes are enumerated from the built app, so a route added later is covered
without editing this file.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flaskserve.app import create_app
from flaskserve.settings import Settings

LIMIT = 1000
#: Values for URL variables: a served model and its version.
URL_VALUES = {"name": "linear", "version": "1"}
_VARIABLE = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")


def post_routes(app: Flask) -> list[str]:
    return sorted(
        _VARIABLE.sub(lambda match: URL_VALUES[match.group(1)], rule.rule)
        for rule in app.url_map.iter_rules()
        if "POST" in (rule.methods or ())
    )


def chunked(client: Any, path: str, body: bytes, content_type: str, **headers: str) -> Any:
    """POST ``body`` without Content-Length, de-chunked as gunicorn and granian hand it to the app."""
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        content_type=content_type,
        headers={"Transfer-Encoding": "chunked", **headers},
        environ_overrides={"wsgi.input_terminated": True},
    )


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> Flask:
    return create_app(make_settings(limits={"max_body_bytes": LIMIT}))


def test_the_app_has_a_post_route_per_protocol_and_the_repository(app: Flask) -> None:
    routes = post_routes(app)

    assert {"/predict", "/v2/models/linear/infer", "/v1/models/linear:predict", "/invocations"} <= set(routes)
    assert "/v2/repository/models/linear/load" in routes


def test_a_chunked_body_over_the_limit_is_refused_on_every_post_route(app: Flask) -> None:
    client = app.test_client()
    # Valid JSON up to the limit and well past it: cut anywhere, it would still parse as a prefix.
    body = b'{"instances": [' + b"[1, 2], " * (LIMIT // 4) + b"[1, 2]]}"

    answers = {path: chunked(client, path, body, "application/json") for path in post_routes(app)}

    assert {path: answer.status_code for path, answer in answers.items()} == dict.fromkeys(answers, 413)
    # The body's rest is still on the connection: the answer says it closes (see web/bodies.py).
    assert {answer.headers.get("Connection") for answer in answers.values()} == {"close"}


def test_a_declared_body_over_the_limit_is_refused_on_every_post_route(app: Flask) -> None:
    client = app.test_client()
    body = b"[" + b"1," * LIMIT + b"1]"

    answers = {
        path: client.post(path, data=body, content_type="application/json") for path in post_routes(app)
    }

    assert {path: answer.status_code for path, answer in answers.items()} == dict.fromkeys(answers, 413)
    assert {answer.headers.get("Connection") for answer in answers.values()} == {"close"}


def test_a_chunked_csv_cut_at_the_limit_is_refused_not_answered_for_its_first_rows(app: Flask) -> None:
    rows = b"".join(b"%d,%d\n" % (i, i) for i in range(LIMIT))

    response = chunked(app.test_client(), "/invocations", b"x,y\n" + rows, "text/csv")

    assert response.status_code == 413
    assert response.get_json()["code"] == "payload_too_large"


def test_a_chunked_body_under_the_limit_is_answered(app: Flask) -> None:
    response = chunked(app.test_client(), "/invocations", b"x,y\n1,2\n3,4\n", "text/csv")

    assert response.status_code == 200
    assert len(response.get_json()["predictions"]) == 2
    assert "Connection" not in response.headers


@pytest.mark.parametrize("path", ["/predict", "/v2/models/linear/infer", "/invocations"])
def test_a_compressed_body_is_refused_on_every_protocol(app: Flask, path: str) -> None:
    response = app.test_client().post(
        path, data=b"\x1f\x8b\x08\x00", content_type="application/json", headers={"Content-Encoding": "gzip"}
    )

    assert response.status_code == 415
    assert "uncompressed" in response.get_json()["error"]
    assert response.headers["Connection"] == "close"


def test_an_answer_says_the_connection_closes_exactly_when_the_body_was_left_unread(app: Flask) -> None:
    client = app.test_client()

    refused_unread = client.post(
        "/v2/models/nosuch/infer", data=b'{"inputs": []}', content_type="application/json"
    )
    refused_read = client.post("/predict", data=b'{"x": 1}', content_type="application/json")

    assert refused_unread.status_code == 404
    assert refused_unread.headers["Connection"] == "close"
    assert refused_read.status_code == 400
    assert "Connection" not in refused_read.headers
