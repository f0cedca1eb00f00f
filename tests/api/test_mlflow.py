"""The MLflow scoring server's routes, through Flask's test client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from flaskserve.app import create_app
from flaskserve.settings import Settings

FORMATS = [
    pytest.param(
        {"dataframe_split": {"columns": ["y", "x"], "data": [[2, 1], [4, 3]], "index": [0, 1]}},
        id="dataframe_split",
    ),
    pytest.param({"dataframe_records": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]}, id="dataframe_records"),
    pytest.param({"instances": [[1, 2], [3, 4]]}, id="instances"),
    pytest.param({"instances": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]}, id="instances by name"),
    pytest.param({"inputs": {"x": [1, 3], "y": [2, 4]}}, id="inputs by column"),
    pytest.param({"inputs": [[1, 2], [3, 4]]}, id="inputs as rows"),
]


@pytest.mark.parametrize("body", FORMATS)
def test_every_json_format_and_csv_give_the_same_predictions(client: FlaskClient, body: Any) -> None:
    expected = client.post("/predict", json={"instances": [[1, 2], [3, 4]]}).get_json()

    from_json = client.post("/invocations", json=body)
    from_csv = client.post("/invocations", data="y,x\n2,1\n4,3\n", content_type="text/csv")

    assert from_json.status_code == 200
    assert from_json.get_json() == expected
    assert from_csv.get_json() == expected


def test_header_picks_the_model_when_several_are_served(client: FlaskClient) -> None:
    body = {"dataframe_split": {"columns": ["x0"], "data": [[1.0]]}}

    response = client.post(
        "/invocations", json={"instances": [[0.0] * 10]}, headers={"X-Model-Name": "diabetes"}
    )
    unknown = client.post("/invocations", json=body, headers={"X-Model-Name": "nope"})

    assert response.status_code == 200
    assert response.headers["X-Model-Name"] == "diabetes"
    assert unknown.status_code == 404


def test_without_a_default_model_invocations_need_the_header(make_settings: Callable[..., Settings]) -> None:
    client = create_app(make_settings(default_model=None)).test_client()

    response = client.post("/invocations", json={"instances": [[1, 2]]})

    assert response.status_code == 404
    assert "X-Model-Name header" in response.get_json()["error"]


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        pytest.param({"data": "1,2", "content_type": "text/plain"}, 415, "accepts", id="other media type"),
        pytest.param({"data": "{}"}, 415, "no Content-Type", id="no media type"),
        pytest.param(
            {"data": "x,y\n1,2", "content_type": "text/csv; charset=latin-1"},
            415,
            "utf-8",
            id="other charset",
        ),
        pytest.param(
            {"json": {}}, 400, "dataframe_split, dataframe_records, instances, inputs", id="no format key"
        ),
        pytest.param(
            {"json": {"instances": [[1, 2]], "inputs": [[1, 2]]}},
            400,
            "several input keys",
            id="two format keys",
        ),
        pytest.param(
            {"json": {"instances": [[1, 2]], "columns": []}},
            400,
            "unexpected key 'columns'",
            id="unknown key",
        ),
        pytest.param(
            {"json": {"instances": [[1, 2]], "params": {"alpha": 1}}}, 400, "alpha", id="unknown param"
        ),
        pytest.param(
            {"json": {"dataframe_split": {"columns": ["x", "x"], "data": [[1, 2]]}}},
            400,
            "twice",
            id="duplicate column",
        ),
        pytest.param(
            {"json": {"dataframe_split": {"columns": ["x", "z"], "data": [[1, 2]]}}},
            400,
            "missing feature 'y'",
            id="wrong column",
        ),
        pytest.param(
            {"data": "x,y\n1,abc\n", "content_type": "text/csv"},
            400,
            "feature 'y' in row 0 must be a number",
            id="csv text value",
        ),
        pytest.param(
            {"data": "x,y\n1,2,3\n", "content_type": "text/csv"},
            400,
            "row 0 has 3 values",
            id="csv ragged row",
        ),
        pytest.param(
            {"data": b"x,y\n\xff,2\n", "content_type": "text/csv"}, 400, "UTF-8", id="csv not utf-8"
        ),
        pytest.param({"data": "", "content_type": "text/csv"}, 400, "empty", id="csv empty"),
    ],
)
def test_bad_invocations_are_4xx(
    client: FlaskClient, kwargs: dict[str, Any], status: int, message: str
) -> None:
    response = client.post("/invocations", **kwargs)

    assert response.status_code == status
    assert message in response.get_json()["error"]


def test_csv_rows_are_limited(make_settings: Callable[..., Settings]) -> None:
    client = create_app(make_settings(limits={"max_rows": 2})).test_client()

    response = client.post("/invocations", data="x,y\n1,2\n1,2\n1,2\n", content_type="text/csv")

    assert response.status_code == 400
    assert response.get_json()["code"] == "limit_exceeded"


def test_ping_health_and_version(client: FlaskClient) -> None:
    assert client.get("/ping").status_code == 200
    assert client.get("/health").status_code == 200
    version = client.get("/version")
    assert version.status_code == 200
    assert version.mimetype == "text/plain"
