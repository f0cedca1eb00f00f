"""The command line: check, convert, demo, and clean failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from flaskserve.cli import main
from flaskserve.testing import save_model


def test_check_prints_signatures_and_settings(repository: Path) -> None:
    result = CliRunner().invoke(main, ["check", str(repository), "--allow-pickle"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    iris = [m for m in report["models"] if m["name"] == "iris"]
    assert [m["version"] for m in iris] == ["1", "2"]
    assert iris[0]["signature"]["classes"] == ["setosa", "versicolor", "virginica"]
    assert report["settings"]["allow_pickle"] is True


def test_check_refuses_an_untrusted_pickle_with_a_clear_message(tmp_path: Path, linear_xy: Any) -> None:
    path = save_model(linear_xy, tmp_path / "model.joblib")

    result = CliRunner().invoke(main, ["check", str(path)])

    assert result.exit_code == 2
    assert "--allow-pickle" in result.output
    assert "Traceback" not in result.output


def test_convert_turns_a_pickle_into_a_skops_file_that_loads_safely(tmp_path: Path, linear_xy: Any) -> None:
    source = save_model(linear_xy, tmp_path / "model.pkl")
    target = tmp_path / "model.skops"

    converted = CliRunner().invoke(main, ["convert", str(source), str(target)])
    checked = CliRunner().invoke(main, ["check", str(target)])

    assert converted.exit_code == 0, converted.output
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.output)["models"][0]["signature"]["features"] == ["x", "y"]


def test_demo_trains_a_model_that_answers_the_tutorial_request(tmp_path: Path) -> None:
    from flaskserve.app import create_app
    from flaskserve.settings import load_settings

    result = CliRunner().invoke(main, ["demo", "--dir", str(tmp_path / "models")])
    client = create_app(load_settings(None, model_path=tmp_path / "models")).test_client()

    assert result.exit_code == 0, result.output
    prediction = client.post("/predict", json={"x": 1, "y": 2}).get_json()["prediction"]
    assert abs(prediction - 7.0) < 0.05


def test_missing_model_path_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check", str(tmp_path / "nowhere.skops")])

    assert result.exit_code == 2
    assert "does not exist" in result.output
