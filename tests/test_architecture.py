"""The layers stay honest: the core never imports Flask, and importing does no work."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE_MODULES = [
    "flaskserve.models.loading",
    "flaskserve.models.registry",
    "flaskserve.models.signature",
    "flaskserve.protocols.simple",
    "flaskserve.protocols.payload",
    "flaskserve.inference.service",
]


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_does_not_import_flask(module: str) -> None:
    probe = f"import sys, {module}; print('flask' in sys.modules or 'werkzeug' in sys.modules)"

    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "False"


def test_importing_the_app_module_loads_no_model_and_no_sklearn() -> None:
    probe = "import sys, flaskserve.app, flaskserve.cli; print('sklearn' in sys.modules)"

    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "False"
