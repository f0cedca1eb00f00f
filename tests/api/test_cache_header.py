"""X-Cache tells whether a prediction came from the cache, whichever protocol asked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from flaskserve.app import create_app
from flaskserve.settings import Settings


@pytest.fixture
def cached_client(make_settings: Callable[..., Settings]) -> FlaskClient:
    return create_app(make_settings(cache_size=100)).test_client()


SAME_ROW_BY_PROTOCOL: list[Any] = [
    pytest.param(
        "/v2/models/linear/infer",
        {"id": "r1", "inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]},
        None,
        id="V2 JSON",
    ),
    pytest.param("/v1/models/linear:predict", {"instances": [[1, 2]]}, None, id="V1 instances"),
    pytest.param(
        "/invocations",
        {"dataframe_split": {"columns": ["x", "y"], "data": [[1, 2]]}},
        None,
        id="MLflow dataframe_split",
    ),
    pytest.param("/invocations", "x,y\n1,2\n", "text/csv", id="MLflow CSV"),
    pytest.param("/predict", {"instances": [{"y": 2, "x": 1}]}, None, id="simple, other key order"),
]


@pytest.mark.parametrize(("path", "body", "content_type"), SAME_ROW_BY_PROTOCOL)
def test_the_same_row_through_another_protocol_hits_the_entry(
    cached_client: FlaskClient, path: str, body: Any, content_type: str | None
) -> None:
    first = cached_client.post("/predict", json={"x": 1, "y": 2})

    if content_type is None:
        again = cached_client.post(path, json=body)
    else:
        again = cached_client.post(path, data=body, content_type=content_type)

    assert first.headers["X-Cache"] == "MISS"
    assert again.status_code == 200
    assert again.headers["X-Cache"] == "HIT"


def test_another_row_misses_and_no_cache_means_no_header(
    cached_client: FlaskClient, client: FlaskClient
) -> None:
    cached_client.post("/predict", json={"x": 1, "y": 2})

    other = cached_client.post("/predict", json={"x": 1, "y": 3})
    uncached = client.post("/predict", json={"x": 1, "y": 2})

    assert other.headers["X-Cache"] == "MISS"
    assert "X-Cache" not in uncached.headers


def test_a_failed_prediction_is_never_cached(cached_client: FlaskClient) -> None:
    first = cached_client.post("/models/exploding/predict", json={"instances": [[-1, 2]]})
    second = cached_client.post("/models/exploding/predict", json={"instances": [[-1, 2]]})

    assert first.status_code == second.status_code == 500
    # The model ran again (a new error id), rather than an error being served from the cache.
    assert first.headers["X-Error-Id"] != second.headers["X-Error-Id"]
