"""Finding models on disk: files, repositories, versions, and paths that must be refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flaskserve.errors import ModelLoadError
from flaskserve.models.loaders import default_loaders
from flaskserve.models.repository import scan
from flaskserve.testing import save_model


def test_a_single_file_is_a_model_named_after_its_stem(tmp_path: Path, linear_xy: Any) -> None:
    path = save_model(linear_xy, tmp_path / "house-prices.skops")

    [source] = scan(path, default_loaders())

    assert (source.name, source.version) == ("house-prices", "1")


def test_repository_lists_models_and_numeric_versions_in_order(tmp_path: Path, linear_xy: Any) -> None:
    for version in ("1", "2", "10"):
        save_model(linear_xy, tmp_path / "linear" / version / "model.skops")
    save_model(linear_xy, tmp_path / "flat" / "model.skops")

    sources = scan(tmp_path, default_loaders())

    assert [(s.name, s.version) for s in sources] == [
        ("flat", "1"),
        ("linear", "1"),
        ("linear", "2"),
        ("linear", "10"),
    ]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        pytest.param("churn/model.skops", "churn", id="named after its folder"),
        pytest.param("models/iris/2/model.skops", "iris", id="version folders are skipped"),
        pytest.param("churn/Model.skops", "churn", id="whatever the case of the stem"),
        pytest.param("my models/model.skops", "model", id="a folder that is no model name leaves the stem"),
        pytest.param("churn/model-v2.skops", "model-v2", id="only the bare stem is generic"),
    ],
)
def test_a_single_file_named_model_is_named_after_its_folder(
    tmp_path: Path, linear_xy: Any, where: str, expected: str
) -> None:
    path = save_model(linear_xy, tmp_path / where)

    [source] = scan(path, default_loaders())

    assert source.name == expected


def test_the_name_given_wins_over_the_folder(tmp_path: Path, linear_xy: Any) -> None:
    path = save_model(linear_xy, tmp_path / "churn" / "model.skops")

    [source] = scan(path, default_loaders(), single_name="retention")

    assert source.name == "retention"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("../etc", id="parent directory"),
        pytest.param("a/b", id="path separator"),
        pytest.param("bad\nname", id="control character"),
        pytest.param(".hidden", id="leading dot"),
        pytest.param("x" * 65, id="too long"),
    ],
)
def test_bad_model_names_are_refused(tmp_path: Path, linear_xy: Any, name: str) -> None:
    path = save_model(linear_xy, tmp_path / "model.skops")

    with pytest.raises(ModelLoadError, match="not a valid model name"):
        scan(path, default_loaders(), single_name=name)


def test_symlink_out_of_the_repository_is_refused(tmp_path: Path, linear_xy: Any) -> None:
    outside = save_model(linear_xy, tmp_path / "outside" / "model.skops")
    version_dir = tmp_path / "repo" / "linear" / "1"
    version_dir.mkdir(parents=True)
    (version_dir / "model.skops").symlink_to(outside)

    with pytest.raises(ModelLoadError, match="outside the model repository"):
        scan(tmp_path / "repo", default_loaders())


def test_two_model_files_in_one_version_is_an_error(tmp_path: Path, linear_xy: Any) -> None:
    save_model(linear_xy, tmp_path / "linear" / "1" / "a.skops")
    save_model(linear_xy, tmp_path / "linear" / "1" / "b.skops")

    with pytest.raises(ModelLoadError, match="exactly one model file"):
        scan(tmp_path, default_loaders())


def test_unknown_file_format_names_the_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "model.h5"
    path.write_bytes(b"\x00")

    with pytest.raises(ModelLoadError, match=r"\.joblib.*\.skops"):
        scan(path, default_loaders())


def test_empty_repository_says_what_layout_it_expects(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="NAME/VERSION"):
        scan(tmp_path, default_loaders())


def test_a_folder_holding_the_model_file_is_one_model_as_kserve_lays_it_out(
    tmp_path: Path, linear_xy: Any
) -> None:
    mounted = tmp_path / "models"
    save_model(linear_xy, mounted / "model.skops")

    assert [(s.name, s.version) for s in scan(mounted, default_loaders(), single_name="churn")] == [
        ("churn", "1")
    ]
    assert [s.name for s in scan(mounted, default_loaders())] == ["models"]
