"""The layers stay honest: the contracts in pyproject.toml hold, can fail, and importing does no work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(source_root: Path) -> subprocess.CompletedProcess[str]:
    """Run the project's import contracts against the package found under ``source_root``."""
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=source_root,
        check=False,
    )


def test_the_import_contracts_hold() -> None:
    result = lint_imports(ROOT / "src")

    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        pytest.param(
            "protocols/payload.py",
            "import flask",
            "The core is pure: no Flask, no Werkzeug",
            id="a core module imports Flask",
        ),
        pytest.param(
            "security/audit.py",
            "from flaskserve.api import docs",
            "Layers: command line, app, API, security, web edge, core",
            id="security imports the API",
        ),
    ],
)
def test_the_import_contracts_fail_on_a_violation(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    copy = tmp_path / "src" / "flaskserve"
    shutil.copytree(ROOT / "src" / "flaskserve", copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")

    result = lint_imports(tmp_path / "src")

    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout


def test_importing_the_app_module_loads_no_model_and_no_sklearn() -> None:
    probe = "import sys, flaskserve.app, flaskserve.cli; print('sklearn' in sys.modules)"

    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "False"
