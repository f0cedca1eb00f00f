"""The command line: check, convert, demo, and clean failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flaskserve.cli import main
from flaskserve.models.trust import file_sha256
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
    # It ships with its training profile: drift is monitored from the first request.
    (version,) = client.get("/models/linear/monitoring").get_json()["versions"]
    assert version["profiled"] is True
    assert version["window_rows"] == 1


def test_missing_model_path_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check", str(tmp_path / "nowhere.skops")])

    assert result.exit_code == 2
    assert "does not exist" in result.output


def run_command(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``flaskserve ARGS`` in its own process, as a user runs it, with no FLASKSERVE_* setting around."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASKSERVE_")}
    return subprocess.run(
        [sys.executable, "-m", "flaskserve", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param((), "no model given: pass a model file or a repository folder", id="no model path"),
        pytest.param(("nowhere.skops",), "'nowhere.skops' does not exist", id="a path that does not exist"),
    ],
)
def test_serve_without_a_model_says_only_why(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = run_command("serve", *args, cwd=tmp_path)

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"flaskserve: {message}\n"


def test_the_pickle_refusal_names_the_file_to_convert(tmp_path: Path, linear_xy: Any) -> None:
    path = save_model(linear_xy, tmp_path / "linear.joblib")
    digest = file_sha256(path)

    result = CliRunner().invoke(main, ["check", str(path)])

    audit, message = result.stderr.splitlines()
    assert (result.exit_code, result.stdout) == (2, "")
    assert json.loads(audit) | {"time": "-", "pid": 0} == {
        "time": "-",
        "level": "warning",
        "logger": "flaskserve.models",
        "pid": 0,
        "message": "model refused",
        "model": "linear",
        "version": "1",
        "sha256": digest,
        "reason": "untrusted",
    }
    assert message == (
        "flaskserve: refusing to load model 'linear' version 1 (linear.joblib): pickle and joblib files "
        "run code when they load. If you trust this file, pass --allow-pickle, or pin its digest with "
        f'trusted_sha256 = ["{digest}"] in the config file; or convert it to a safe format with '
        "'flaskserve convert linear.joblib linear.skops'"
    )


def test_convert_of_a_skops_file_says_it_is_one_already(tmp_path: Path, linear_xy: Any) -> None:
    source = save_model(linear_xy, tmp_path / "linear.skops")

    result = CliRunner().invoke(main, ["convert", str(source), str(tmp_path / "other.skops")])

    assert result.exit_code == 2
    assert result.stderr == (
        f"flaskserve: '{source}' is already a skops file: serve it as it is (flaskserve serve {source})\n"
    )
    assert not (tmp_path / "other.skops").exists()


def test_convert_of_another_format_names_the_ones_it_reads(tmp_path: Path) -> None:
    source = tmp_path / "linear.onnx"
    source.write_bytes(b"onnx")

    result = CliRunner().invoke(main, ["convert", str(source), str(tmp_path / "linear.skops")])

    assert result.exit_code == 2
    assert result.stderr == (
        f"flaskserve: '{source}' is not a pickle or joblib file (.joblib, .pkl, .pickle); "
        "convert turns those into skops files\n"
    )


def test_convert_keeps_an_existing_target_unless_forced(tmp_path: Path, linear_xy: Any) -> None:
    source = save_model(linear_xy, tmp_path / "linear.pkl")
    target = tmp_path / "linear.skops"
    target.write_bytes(b"precious")

    refused = CliRunner().invoke(main, ["convert", str(source), str(target)])
    kept = target.read_bytes()
    forced = CliRunner().invoke(main, ["convert", str(source), str(target), "--force"])

    assert refused.exit_code == 2
    assert refused.stderr == f"flaskserve: '{target}' already exists; pass --force to overwrite it\n"
    assert kept == b"precious"
    assert forced.exit_code == 0, forced.output
    assert forced.stdout == f"wrote {target}\n"
    assert CliRunner().invoke(main, ["check", str(target)]).exit_code == 0


def test_a_lone_model_file_is_named_after_its_folder_and_name_wins(tmp_path: Path, linear_xy: Any) -> None:
    path = save_model(linear_xy, tmp_path / "churn" / "model.skops")

    by_folder = CliRunner().invoke(main, ["check", str(path)])
    by_name = CliRunner().invoke(main, ["check", str(path), "--name", "retention"])

    assert json.loads(by_folder.stdout)["models"][0]["name"] == "churn"
    assert json.loads(by_name.stdout)["models"][0]["name"] == "retention"
