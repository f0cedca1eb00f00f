"""The playground's page, its form description and its live figures, through the Flask test client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from flaskserve.app import create_app
from flaskserve.settings import Settings

IRIS_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.mark.parametrize("path", ["/ui", "/ui/models/iris", "/ui/models/iris/versions/2"])
def test_the_pages_are_the_shell_under_a_strict_policy(client: FlaskClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert b'src="/ui/static/playground/main.js"' in response.data


def served(client: FlaskClient, path: str) -> int:
    """The status of a static file, its stream closed."""
    response = client.get(path)
    response.close()
    return response.status_code


def test_every_script_the_page_loads_is_served_from_here(client: FlaskClient) -> None:
    main = client.get("/ui/static/playground/main.js")
    script = main.get_data(as_text=True)
    main.close()
    imported = [line.split('"')[1] for line in script.splitlines() if line.startswith("import ")]

    assert main.status_code == 200
    assert imported
    assert all(served(client, f"/ui/static/playground/{name[2:]}") == 200 for name in imported)
    assert served(client, "/ui/static/playground.css") == 200
    assert served(client, "/ui/static/../templates/playground.html") == 404


def test_the_index_and_the_api_page_link_to_the_playground(client: FlaskClient) -> None:
    assert client.get("/").json["links"]["playground"] == "/ui"  # type: ignore[index]
    assert b'href="/ui"' in client.get("/docs").data


def test_the_form_starts_from_the_scaler_statistics_of_a_pipeline(client: FlaskClient) -> None:
    form = client.get("/ui/api/models/iris/versions/2/form").json
    assert form is not None
    petal = next(f for f in form["fields"] if f["name"] == "petal_length")

    # iris petal lengths: mean 3.758, standard deviation 1.759 (population).
    assert petal["source"] == "training"
    assert petal["value"] == pytest.approx(3.758, abs=1e-3)
    assert petal["min"] == pytest.approx(3.758 - 3 * 1.759, abs=1e-2)
    assert petal["max"] == pytest.approx(3.758 + 3 * 1.759, abs=1e-2)
    assert form["widget"] == "form"


def test_settings_hints_win_over_training_statistics(make_settings: Callable[..., Settings]) -> None:
    hints: dict[str, Any] = {
        "example": {"petal_length": 1.4},
        "features": {"petal_width": {"description": "in cm", "choices": [0.2, 1.3, 2.0]}},
    }
    client = create_app(make_settings(models={"iris": {"playground": hints}})).test_client()

    fields = {f["name"]: f for f in client.get("/ui/api/models/iris/versions/2/form").json["fields"]}  # type: ignore[index]

    assert fields["petal_length"]["value"] == 1.4
    assert (
        fields["petal_width"] | {"description": "in cm", "input": "select", "choices": [0.2, 1.3, 2.0]}
        == fields["petal_width"]
    )
    assert fields["sepal_length"]["source"] == "training"


def test_a_model_without_hints_starts_at_zero(client: FlaskClient) -> None:
    form = client.get("/ui/api/models/diabetes/form").json

    assert form is not None
    assert form["version"] == "1"
    assert {(f["name"], f["value"], f["source"]) for f in form["fields"][:2]} == {
        ("x0", 0.0, "none"),
        ("x1", 0.0, "none"),
    }


def test_an_unknown_model_is_a_json_404(client: FlaskClient) -> None:
    response = client.get("/ui/api/models/nope/form")

    assert response.status_code == 404
    assert response.json is not None
    assert "nope" in response.json["error"]


def test_the_figures_count_requests_errors_latency_and_cache(make_settings: Callable[..., Settings]) -> None:
    client = create_app(make_settings(cache_size=10)).test_client()
    for _ in range(3):
        assert client.post("/models/iris/versions/1/predict", json=IRIS_ROW).status_code == 200
    assert client.post("/models/iris/versions/1/predict", json={"sepal_length": 1}).status_code == 400

    figures = client.get("/ui/api/figures").json["models"]  # type: ignore[index]

    iris = figures["iris"]
    assert (iris["requests"], iris["client_errors"], iris["server_errors"]) == (4, 1, 0)
    assert (iris["cache_hits"], iris["cache_misses"]) == (2, 1)
    assert iris["cache_hit_ratio"] == pytest.approx(2 / 3)
    assert 0 < iris["p50_ms"] <= iris["p99_ms"]
    assert figures["linear"]["requests"] == 0
    assert figures["linear"]["p50_ms"] is None
