"""Refusing to serve a network without keys, from the function to the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flaskserve.errors import ConfigError
from flaskserve.security.exposure import check_exposure, is_loopback


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        pytest.param("127.0.0.1", True, id="IPv4 loopback"),
        pytest.param("127.8.9.10", True, id="anywhere in 127/8"),
        pytest.param("::1", True, id="IPv6 loopback"),
        pytest.param("[::1]", True, id="IPv6 loopback in brackets"),
        pytest.param("localhost", True, id="localhost"),
        pytest.param("0.0.0.0", False, id="every IPv4 interface"),
        pytest.param("::", False, id="every IPv6 interface"),
        pytest.param("192.168.1.5", False, id="a LAN address"),
        pytest.param("server.example.com", False, id="a host name may resolve anywhere"),
    ],
)
def test_loopback_addresses(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_a_public_bind_without_keys_is_refused_with_the_ways_out() -> None:
    with pytest.raises(ConfigError, match="--insecure") as refused:
        check_exposure("0.0.0.0", key_count=0, insecure=False)

    assert "flaskserve keys create" in refused.value.message


def test_keys_or_insecure_or_loopback_let_the_server_start(caplog: pytest.LogCaptureFixture) -> None:
    check_exposure("0.0.0.0", key_count=1, insecure=False)
    check_exposure("127.0.0.1", key_count=0, insecure=False)
    check_exposure("0.0.0.0", key_count=0, insecure=True)

    assert "--insecure" in caplog.text


def test_serve_on_every_interface_with_self_signed_tls_refuses_to_start_without_keys(
    tmp_path: Path, linear_model_file: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flaskserve",
            "serve",
            str(linear_model_file),
            "--host",
            "0.0.0.0",
            "--tls-self-signed",
            "--keys-file",
            str(tmp_path / "no-keys.json"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )

    assert result.returncode == 2
    assert "refusing to serve on '0.0.0.0' without API keys" in result.stderr
    assert not (tmp_path / ".flaskserve-tls").exists()


@pytest.fixture
def linear_model_file(repository: Path) -> Path:
    return next((repository / "linear").rglob("*.skops"))
