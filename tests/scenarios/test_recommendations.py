"""Recommendations: the wine example's Python-class model recommends items like the one asked about."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from example_code import example_settings, load_example
from flask.testing import FlaskClient

from flaskserve.app import create_app
from flaskserve.settings import Settings


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    train = load_example("recommendations", "train")
    folder = tmp_path_factory.mktemp("recommendations")
    features, _, _ = train.load_catalogue()
    train.profile(train.save(train.build_index(features), folder), len(features))
    return folder


@pytest.fixture(scope="module")
def client(repository: Path) -> FlaskClient:
    return create_app(example_settings("recommendations", repository, allow_code=True)).test_client()


def test_the_model_code_must_be_trusted(repository: Path) -> None:
    from flaskserve.errors import UntrustedModel

    with pytest.raises(UntrustedModel):
        create_app(example_settings("recommendations", repository))


def test_recommendations_share_the_items_cultivar_far_more_than_chance(client: FlaskClient) -> None:
    train = load_example("recommendations", "train")
    _, cultivars, _ = train.load_catalogue()
    items = list(range(len(cultivars)))

    response = client.post("/predict", json={"instances": [{"item_id": i} for i in items]})
    assert response.status_code == 200
    recommended = np.array(response.get_json()["predictions"])

    assert recommended.shape == (len(items), 5)
    assert not (recommended == np.array(items)[:, None]).any()  # never the item itself
    same = (cultivars[recommended] == cultivars[:, None]).mean()
    chance = float(((np.bincount(cultivars) / len(cultivars)) ** 2).sum())  # about 0.34
    assert same >= 0.85
    assert same > 2 * chance


def test_requests_gathered_on_a_few_items_drift_from_the_catalogue_asked_evenly(repository: Path) -> None:
    client = create_app(example_settings("recommendations", repository, allow_code=True)).test_client()
    every_item = [{"item_id": i} for i in range(178)]
    assert client.post("/predict", json={"instances": every_item}).status_code == 200
    (version,) = client.get("/models/wines/monitoring").get_json()["versions"]
    assert version["profiled"] is True
    (item,) = [f for f in version["features"] if f["role"] == "input"]
    assert item["band"] == "stable"

    # As many requests again, all about the first three wines.
    popular = [{"item_id": i % 3} for i in range(178)]
    assert client.post("/predict", json={"instances": popular}).status_code == 200
    (version,) = client.get("/models/wines/monitoring").get_json()["versions"]
    (item,) = [f for f in version["features"] if f["role"] == "input"]
    assert version["window_rows"] == 356
    assert item["band"] == "major"


def test_an_unknown_item_is_a_400_that_names_it(client: FlaskClient) -> None:
    response = client.post("/predict", json={"item_id": 178})
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "item_id 178 is not in the catalogue; ids are whole numbers 0..177",
        "code": "invalid_value",
    }


def test_the_client_prints_recommendations(
    repository: Path, serve: Callable[[Settings], str], capsys: pytest.CaptureFixture[str]
) -> None:
    train = load_example("recommendations", "train")
    script = load_example("recommendations", "client", train=train)
    url = serve(example_settings("recommendations", repository, allow_code=True))
    script.main(["0", "60", "130", "--url", url])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("item 0 (cultivar 0): ")


def test_the_client_shows_the_servers_message_for_an_unknown_item(
    repository: Path, serve: Callable[[Settings], str], capsys: pytest.CaptureFixture[str]
) -> None:
    train = load_example("recommendations", "train")
    script = load_example("recommendations", "client", train=train)
    url = serve(example_settings("recommendations", repository, allow_code=True))

    with pytest.raises(SystemExit) as stopped:
        script.main(["500", "--url", url])

    assert str(stopped.value) == (
        "the server answered 400: item_id 500 is not in the catalogue; ids are whole numbers 0..177 "
        "(invalid_value)"
    )
    assert capsys.readouterr().out == ""


def test_the_client_takes_the_port_the_server_reads(
    repository: Path,
    serve: Callable[[Settings], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    train = load_example("recommendations", "train")
    script = load_example("recommendations", "client", train=train)
    url = serve(example_settings("recommendations", repository, allow_code=True))
    monkeypatch.setenv("FLASKSERVE_PORT", url.rsplit(":", 1)[1])

    script.main(["0"])

    assert capsys.readouterr().out.startswith("item 0 (cultivar 0): ")
