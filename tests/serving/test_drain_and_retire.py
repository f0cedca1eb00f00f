"""A draining replica is unready yet predicts; a retiring worker's answers close their connections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flaskserve.app import create_app
from flaskserve.lifecycle import draining
from flaskserve.lifecycle.draining import DRAIN_FILE, close_connections_when_due
from flaskserve.settings import Settings


@pytest.mark.parametrize("path", ["/v2/health/ready", "/readyz", "/ping"])
def test_a_draining_replica_is_unready_but_still_predicts(
    settings: Settings, tmp_path: Path, path: str
) -> None:
    app = create_app(settings, run_dir=tmp_path)
    client = app.test_client()
    assert client.get(path).status_code == 200

    (tmp_path / DRAIN_FILE).touch()  # what the master does on TERM, seen by every worker

    assert client.get(path).status_code == 503
    assert client.post("/predict", json={"x": 1.0, "y": 2.0}).status_code == 200
    assert client.get("/v2/health/live").status_code == 200


def test_an_app_without_a_run_directory_never_drains(app: Flask) -> None:
    assert app.test_client().get("/readyz").status_code == 200


def _headers_of(app: Any) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []

    def start_response(_status: str, headers: list[tuple[str, str]], *_: Any) -> None:
        seen.extend(headers)

    b"".join(app({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, start_response))
    return seen


def test_answers_close_their_connection_once_the_worker_retires_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(draining, "_retiring", type(draining._retiring)())

    def hello(_environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "keep-alive")])
        return [b"hello"]

    app = close_connections_when_due(hello)
    assert ("Connection", "keep-alive") in _headers_of(app)

    draining.retire_connections()

    headers = _headers_of(app)
    assert [v for n, v in headers if n.lower() == "connection"] == ["close"]
    assert ("Content-Type", "text/plain") in headers
