"""A cache hit sent again from the request's own bytes answers exactly as the first answer did.

Run with the prediction lane and through Flask (tests/conftest.py). Each protocol
route's request is sent twice: the first is a miss, the second a hit answered
from the reply kept for its bytes. Everything but ``X-Cache`` and the request id
must be equal; a body written differently for the same rows still gets its own,
correct answer; a new version never gets an old one; and the metrics, access
lines and inference log count a hit as before.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flaskserve import testing
from flaskserve.access import PREDICT_DEFAULT
from flaskserve.app import create_app
from flaskserve.models.served import ServedModel
from flaskserve.observability.monitoring import Monitoring
from flaskserve.protocols.simple import SimpleProtocol, SimpleRequest
from flaskserve.protocols.table import default_protocols
from flaskserve.protocols.wire import Decoded, PredictRoute, WireRequest
from flaskserve.runtime import get_runtime
from flaskserve.settings import RequestLimits, Settings
from metrics_text import labels, samples

JSON = "application/json"
#: The JSON part of a V2 binary request for one row of two float64 values, asking for a binary answer.
V2_HEAD = orjson.dumps(
    {
        "inputs": [
            {"name": "input", "shape": [1, 2], "datatype": "FP64", "parameters": {"binary_data_size": 16}}
        ],
        "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
    }
)

#: (path, body, content type, extra headers) of one request per protocol route the cache serves.
ROUTES: list[Any] = [
    pytest.param("/predict", b'{"x": 1, "y": 2}', JSON, {}, id="simple /predict"),
    pytest.param("/models/linear/predict", b'{"instances": [[1, 2], [3, 4]]}', JSON, {}, id="simple by name"),
    pytest.param(
        "/models/iris/versions/1/predict",
        b'{"instances": [[5.1, 3.5, 1.4, 0.2]], "method": "predict_proba"}',
        JSON,
        {},
        id="simple, versioned, probabilities",
    ),
    pytest.param("/models/linear/explain", b'{"x": 1, "y": 2}', JSON, {}, id="simple explain"),
    pytest.param(
        "/v2/models/linear/infer",
        b'{"id": "r1", "inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}',
        JSON,
        {},
        id="V2 JSON",
    ),
    pytest.param(
        "/v2/models/linear/infer",
        V2_HEAD + np.array([1.0, 2.0]).tobytes(),
        "application/octet-stream",
        {"Inference-Header-Content-Length": str(len(V2_HEAD))},
        id="V2 binary",
    ),
    pytest.param("/v1/models/linear:predict", b'{"instances": [[1, 2]]}', JSON, {}, id="V1 :predict"),
    pytest.param(
        "/invocations",
        b'{"dataframe_split": {"columns": ["x", "y"], "data": [[1, 2]]}}',
        JSON,
        {"X-Model-Name": "linear"},
        id="MLflow JSON",
    ),
    pytest.param("/invocations", b"x,y\n1,2\n", "text/csv", {}, id="MLflow CSV"),
]
#: Headers that differ between any two answers, hit or not.
_PER_REQUEST = ("X-Request-ID", "Date")


@pytest.fixture
def cached_app(make_settings: Callable[..., Settings]) -> Flask:
    return create_app(make_settings(cache_size=100))


def _post(
    client: FlaskClient, path: str, body: bytes, content_type: str, headers: dict[str, str]
) -> TestResponse:
    return client.post(path, data=body, content_type=content_type, headers=headers)


def _seen(response: TestResponse) -> tuple[int, list[tuple[str, str]], bytes]:
    shown = sorted((name, value) for name, value in response.headers.items() if name not in _PER_REQUEST)
    return response.status_code, shown, response.get_data()


def _counts(app: Flask, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return samples(app.test_client().get("/metrics").get_data(as_text=True), name)


@pytest.mark.parametrize(("path", "body", "content_type", "headers"), ROUTES)
def test_a_hit_is_answered_exactly_as_the_miss_before_it(
    cached_app: Flask, path: str, body: bytes, content_type: str, headers: dict[str, str]
) -> None:
    client = cached_app.test_client()

    miss = _post(client, path, body, content_type, headers)
    hits = [_post(client, path, body, content_type, headers) for _ in range(2)]

    assert miss.status_code == 200, miss.get_data(as_text=True)
    assert miss.headers["X-Cache"] == "MISS"
    for hit in hits:
        assert hit.headers["X-Cache"] == "HIT"
        status, shown, answer = _seen(hit)
        assert (status, [h for h in shown if h[0] != "X-Cache"], answer) == (
            miss.status_code,
            [h for h in _seen(miss)[1] if h[0] != "X-Cache"],
            miss.get_data(),
        )


@pytest.mark.parametrize(("path", "body", "content_type", "headers"), ROUTES)
def test_a_hit_answers_as_a_server_without_a_cache(
    cached_app: Flask, client: FlaskClient, path: str, body: bytes, content_type: str, headers: dict[str, str]
) -> None:
    cached = cached_app.test_client()
    _post(cached, path, body, content_type, headers)

    hit = _seen(_post(cached, path, body, content_type, headers))
    uncached = _seen(_post(client, path, body, content_type, headers))

    assert (hit[0], hit[2]) == (uncached[0], uncached[2])
    assert [h for h in hit[1] if h[0] != "X-Cache"] == uncached[1]


def test_a_body_written_differently_gets_its_own_answer_from_the_same_entry(cached_app: Flask) -> None:
    client = cached_app.test_client()
    first = client.post("/predict", data=b'{"x": 1, "y": 2}', content_type=JSON)
    spaced = client.post("/predict", data=b'{ "y" : 2.0 , "x" : 1 }', content_type=JSON)
    listed = client.post("/predict", data=b'{"instances": [{"x": 1, "y": 2}]}', content_type=JSON)
    listed_again = client.post("/predict", data=b'{"instances": [{"x": 1, "y": 2}]}', content_type=JSON)

    assert [r.headers["X-Cache"] for r in (first, spaced, listed, listed_again)] == [
        "MISS",
        "HIT",
        "HIT",
        "HIT",
    ]
    assert spaced.get_json() == first.get_json()
    # The same rows asked in the list form get the list form's answer, not the first body's.
    assert listed.get_json() == listed_again.get_json() == {"predictions": [first.get_json()["prediction"]]}


def test_a_header_the_protocol_reads_is_part_of_the_form(cached_app: Flask) -> None:
    """A V2 binary body split at another point is another request, even with the same bytes."""
    client = cached_app.test_client()
    path, body, content_type, headers = ROUTES[5].values

    good = _post(client, path, body, content_type, headers)
    good_again = _post(client, path, body, content_type, headers)
    split_elsewhere = _post(
        client, path, body, content_type, {"Inference-Header-Content-Length": str(len(V2_HEAD) - 1)}
    )

    assert (good.status_code, good_again.headers["X-Cache"]) == (200, "HIT")
    assert split_elsewhere.status_code == 400


@pytest.fixture
def repo(repository: Path, tmp_path: Path) -> Path:
    """A copy of the test repository that a test may add versions to."""
    return Path(shutil.copytree(repository, tmp_path / "repo"))


def test_a_new_version_never_gets_the_old_versions_answer(
    make_settings: Callable[..., Settings], repo: Path
) -> None:
    app = create_app(make_settings(model_path=repo, cache_size=100))
    client = app.test_client()
    row = b'{"x": 1, "y": 2}'
    old = [client.post("/predict", data=row, content_type=JSON) for _ in range(2)]
    testing.save_model(testing.train_constant(42.0), repo / "linear" / "2" / "model.skops")

    loaded = client.post("/v2/repository/models/linear/load", json={})
    new = [client.post("/predict", data=row, content_type=JSON) for _ in range(2)]

    assert loaded.status_code == 200
    assert [(r.headers["X-Model-Version"], r.headers["X-Cache"]) for r in old] == [
        ("1", "MISS"),
        ("1", "HIT"),
    ]
    assert [(r.headers["X-Model-Version"], r.headers["X-Cache"]) for r in new] == [
        ("2", "MISS"),
        ("2", "HIT"),
    ]
    assert [r.get_json()["prediction"] for r in new] == pytest.approx([42.0, 42.0])


def test_a_version_reloaded_from_a_changed_file_is_answered_afresh(
    make_settings: Callable[..., Settings], repo: Path
) -> None:
    app = create_app(make_settings(model_path=repo, cache_size=100))
    client = app.test_client()
    row = b'{"x": 1, "y": 2}'
    before = [client.post("/predict", data=row, content_type=JSON) for _ in range(2)]
    testing.save_model(testing.train_constant(-7.0), repo / "linear" / "1" / "model.skops")

    assert client.post("/v2/repository/models/linear/load", json={}).status_code == 200
    after = client.post("/predict", data=row, content_type=JSON)

    assert before[1].headers["X-Cache"] == "HIT"
    assert (after.headers["X-Cache"], after.get_json()["prediction"]) == ("MISS", pytest.approx(-7.0))


def test_a_hit_is_counted_logged_and_monitored_as_before(
    make_settings: Callable[..., Settings], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings(cache_size=100, inference_log=f"file://{tmp_path / 'log'}"))
    client = app.test_client()
    with caplog.at_level(logging.INFO, logger="flaskserve.access"):
        answers = [client.post("/predict", data=b'{"x": 1, "y": 2}', content_type=JSON) for _ in range(3)]
    Monitoring.flush(app)

    linear = {"model": "linear", "version": "1"}
    assert [r.headers["X-Cache"] for r in answers] == ["MISS", "HIT", "HIT"]
    assert _counts(app, "flaskserve_cache_lookups_total") == {
        labels(**linear, result="miss"): 1.0,
        labels(**linear, result="hit"): 2.0,
    }
    assert _counts(app, "flaskserve_model_inference_seconds_count") == {
        labels(**linear, method="predict"): 1.0
    }
    requests = labels(**linear, protocol="simple", method="predict", status="200")
    assert _counts(app, "flaskserve_requests_total")[requests] == 3.0
    lines = [r for r in caplog.records if r.name == "flaskserve.access"]
    assert [(r.cache_hit, r.rows, r.method, r.batch_rows) for r in lines] == [  # type: ignore[attr-defined]
        (False, 1, "predict", 1),
        (True, 1, "predict", 0),
        (True, 1, "predict", 0),
    ]
    records = [
        orjson.loads(line)
        for path in sorted((tmp_path / "log").iterdir())
        for line in path.read_bytes().splitlines()
    ]
    assert [r["request_id"] for r in records] == [r.headers["X-Request-ID"] for r in answers]
    assert all(r["inputs"] == records[0]["inputs"] and r["outputs"] == records[0]["outputs"] for r in records)


def test_kept_replies_are_dropped_with_the_models_cache(cached_app: Flask) -> None:
    client = cached_app.test_client()
    for _ in range(2):
        client.post("/predict", data=b'{"x": 1, "y": 2}', content_type=JSON)
    service = get_runtime(cached_app).service

    service.forget("linear")
    again = client.post("/predict", data=b'{"x": 1, "y": 2}', content_type=JSON)

    assert again.headers["X-Cache"] == "MISS"


class ScaledProtocol(SimpleProtocol):
    """The simple protocol at ``/scaled``, scaling the rows by an ``X-Scale`` header it does not declare."""

    name = "scaled"
    routes = (PredictRoute("scaled", "/scaled", PREDICT_DEFAULT, SimpleProtocol.routes[0].operation),)

    def decode(
        self, request: WireRequest, model: ServedModel, limits: RequestLimits
    ) -> Decoded[SimpleRequest]:
        decoded = super().decode(request, model, limits)
        scaled = decoded.matrix * float(request.headers.get("X-Scale") or 1)
        return Decoded(
            decoded.methods, scaled, SimpleRequest(scaled, decoded.state.method, decoded.state.single)
        )


def test_a_reply_that_depends_on_an_undeclared_header_is_never_kept(
    make_settings: Callable[..., Settings],
) -> None:
    protocols = default_protocols()
    protocols.register(ScaledProtocol())
    client = create_app(make_settings(cache_size=100), protocols=protocols).test_client()
    row = b'{"x": 1, "y": 2}'

    once = client.post("/scaled", data=row, content_type=JSON, headers={"X-Scale": "1"})
    again = client.post("/scaled", data=row, content_type=JSON, headers={"X-Scale": "1"})
    tenfold = client.post("/scaled", data=row, content_type=JSON, headers={"X-Scale": "10"})
    plain = client.post("/predict", data=b'{"x": 10, "y": 20}', content_type=JSON)

    assert [r.headers["X-Cache"] for r in (once, again, tenfold)] == ["MISS", "HIT", "MISS"]
    assert again.get_json() == once.get_json()
    assert tenfold.get_json() == plain.get_json()
