"""The package as a user gets it: ``python -m build``, then the wheel in a clean virtual environment.

Building is quick and runs with the end-to-end tests: the wheel must carry the web page's files and
declare every extra. Installing it (scikit-learn and the rest from PyPI), and then once more with
every extra, takes minutes: ``make wheel-check`` (``FLASKSERVE_WHEEL_CHECK=1``) runs that.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from flaskserve import __version__

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("speedups", "granian", "redis", "onnx", "xgboost", "lightgbm")
#: The module each extra makes importable.
EXTRA_MODULES = {
    "speedups": "gunicorn_h1c",
    "granian": "granian",
    "redis": "redis",
    "onnx": "onnxruntime",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
}
INSTALL_CHECK = os.environ.get("FLASKSERVE_WHEEL_CHECK") == "1"


def run(*command: str | Path, cwd: Path | None = None, timeout: float = 900) -> str:
    """Run ``command``; its output, or a failure that shows it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASKSERVE_", "VIRTUAL_ENV", "PYTHON"))}
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel ``python -m build`` makes from a copy of this checkout (sdist first, the wheel from it)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    )
    dist = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", dist, source)
    (built,) = dist.glob("flaskserve-*.whl")
    return built


def test_the_wheel_holds_the_web_page_and_declares_every_extra(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())

    ui = ROOT / "src" / "flaskserve" / "ui"
    expected = {
        f"flaskserve/ui/{path.relative_to(ui).as_posix()}"
        for folder in ("static", "templates")
        for path in (ui / folder).rglob("*")
        if path.is_file()
    }
    assert expected, "the web page has files"
    assert sorted(expected - names) == []
    assert "flaskserve/py.typed" in names
    assert set(EXTRAS) <= set(metadata.get_all("Provides-Extra") or [])
    assert wheel.name == f"flaskserve-{__version__}-py3-none-any.whl"


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv") / "venv"
    run(sys.executable, "-m", "venv", venv)
    return venv / "bin"


@pytest.mark.skipif(not INSTALL_CHECK, reason="slow (installs from PyPI): make wheel-check")
def test_the_installed_wheel_runs_the_command_and_serves_its_page(
    wheel: Path, clean_venv: Path, tmp_path: Path
) -> None:
    run(clean_venv / "pip", "install", "--quiet", wheel)
    model = tmp_path / "linear.skops"
    run(
        clean_venv / "python",
        "-c",
        "import sys; from pathlib import Path; from flaskserve import testing; "
        "testing.save_model(testing.train_linear_xy(), Path(sys.argv[1]))",
        model,
    )

    version = run(clean_venv / "flaskserve", "--version", cwd=tmp_path)
    checked = run(clean_venv / "flaskserve", "check", model, cwd=tmp_path)
    page = run(
        clean_venv / "python",
        "-c",
        "from pathlib import Path; import sys; from flaskserve.app import create_app; "
        "from flaskserve.settings import load_settings; "
        "c = create_app(load_settings(None, model_path=Path(sys.argv[1]))).test_client(); "
        "print(c.get('/docs').status_code, c.get('/docs/static/docs.js').status_code, "
        "c.get('/docs/static/docs.css').status_code)",
        model,
        cwd=tmp_path,
    )

    assert version == f"flaskserve, version {__version__}\n"
    assert '"name": "linear"' in checked
    assert page.split() == ["200", "200", "200"]


@pytest.mark.skipif(not INSTALL_CHECK, reason="slow (installs from PyPI): make wheel-check")
def test_the_wheel_with_every_extra_resolves_and_imports(wheel: Path, clean_venv: Path) -> None:
    run(clean_venv / "pip", "install", "--quiet", f"{wheel}[{','.join(EXTRAS)}]")

    imported = run(
        clean_venv / "python",
        "-c",
        "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]; print('ok')",
        *EXTRA_MODULES.values(),
        "onnx",
    )
    pip_check = run(clean_venv / "pip", "check")

    assert imported == "ok\n"
    assert "No broken requirements" in pip_check
