"""The protocol modules are pure: importing them loads neither Flask nor Werkzeug."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROTOCOL_MODULES = [
    "flaskserve.protocols.datatypes",
    "flaskserve.protocols.binary",
    "flaskserve.protocols.v2",
    "flaskserve.protocols.v1",
    "flaskserve.protocols.mlflow",
    "flaskserve.protocols.openapi",
]


def test_protocol_modules_do_not_import_flask() -> None:
    imports = "; ".join(f"import {module}" for module in PROTOCOL_MODULES)
    probe = f"import sys; {imports}; print('flask' in sys.modules or 'werkzeug' in sys.modules)"

    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("rule", "path", "names"),
    [
        pytest.param("/v2/models/<name>/infer", "/v2/models/{name}/infer", ["name"], id="default converter"),
        pytest.param(
            "/v1/models/<name>:predict", "/v1/models/{name}:predict", ["name"], id="verb after a colon"
        ),
        pytest.param(
            "/docs/static/<path:filename>", "/docs/static/{filename}", ["filename"], id="path converter"
        ),
        pytest.param("/a/<int(min=1):n>", "/a/{n}", ["n"], id="converter with arguments"),
    ],
)
def test_werkzeug_rules_become_openapi_paths(rule: str, path: str, names: list[str]) -> None:
    from flaskserve.protocols.openapi import openapi_path

    assert openapi_path(rule) == (path, names)
