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


class _Unreadable(io.BytesIO):
    """A body stream that fails the test if anything reads it."""

    def read(self, size: int | None = -1) -> bytes:
        raise AssertionError("the body was read")

    readinto = read  # type: ignore[assignment]


@pytest.mark.parametrize("terminated", [False, True], ids=["werkzeug-stream", "server-terminated"])
def test_a_declared_size_over_the_limit_is_refused_before_a_byte_is_read(
    app: Flask, terminated: bool
) -> None:
    response = app.test_client().post(
        "/predict",
        input_stream=_Unreadable(),
        content_type="application/json",
        environ_overrides={"CONTENT_LENGTH": str(LIMIT + 1), "wsgi.input_terminated": terminated},
    )

    assert response.status_code == 413
    assert response.get_json()["code"] == "payload_too_large"
    assert response.headers["Connection"] == "close"


@pytest.mark.parametrize("terminated", [False, True], ids=["werkzeug-stream", "server-terminated"])
@pytest.mark.parametrize("path", ["/predict", "/invocations"])
def test_a_body_shorter_than_its_content_length_is_refused_even_when_what_came_parses(
    app: Flask, path: str, terminated: bool
) -> None:
    # The client stopped sending after a whole document: gunicorn and granian hand over
    # what came, then the end of the stream (server-terminated), as they do for a cut body.
    body = b'{"x": 1, "y": 2}' if path == "/predict" else b"x,y\n1,2\n"
    environ = {"CONTENT_LENGTH": str(len(body) + 14)}
    if terminated:
        environ["wsgi.input_terminated"] = True
    content_type = "application/json" if path == "/predict" else "text/csv"

    response = app.test_client().post(
        path, input_stream=io.BytesIO(body), content_type=content_type, environ_overrides=environ
    )

    assert response.status_code == 400
    assert response.headers["Connection"] == "close"
    assert response.get_json()["error"] == (
        f"the request body ended before the {len(body) + 14} bytes its Content-Length declares"
    )


class _Trickle(io.BytesIO):
    """A body stream that hands over a few bytes a read, as a stream may."""

    def read(self, size: int | None = -1) -> bytes:
        return super().read(min(3, size if size is not None and size >= 0 else 3))


def test_a_body_handed_over_in_parts_is_read_whole(app: Flask) -> None:
    body = b'{"x": 1, "y": 2}'

    response = app.test_client().post(
        "/predict",
        input_stream=_Trickle(body),
        content_type="application/json",
        environ_overrides={"CONTENT_LENGTH": str(len(body)), "wsgi.input_terminated": True},
    )

    assert response.status_code == 200


@pytest.mark.parametrize("declared", ["abc", "-5", "+16", " 16", "\uff11\uff16"])
def test_a_content_length_of_other_than_digits_is_read_as_werkzeug_reads_it(
    app: Flask, declared: str
) -> None:
    # gunicorn and granian refuse these (400) before the application sees them; behind
    # another server, Werkzeug reads " 16" as 16 and the others as 0.
    response = app.test_client().post(
        "/predict",
        input_stream=io.BytesIO(b'{"x": 1, "y": 2}'),
        content_type="application/json",
        environ_overrides={"CONTENT_LENGTH": declared},
    )

    if declared == " 16":
        assert response.status_code == 200
    else:
        assert response.status_code == 400
        assert "empty" in response.get_json()["error"]
