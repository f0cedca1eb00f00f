"""HTTPS end to end: ``--tls-self-signed``, and mutual TLS with ``--certfile/--keyfile/--ca-certs``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tls_server import HttpsLauncher

from certificates import client_ca_and_certificate
from flaskserve.security.keys import KeyStore
from flaskserve.security.tls import CERT_FILENAME, create_self_signed

pytestmark = pytest.mark.e2e


def write_key(path: Path, scopes: list[str]) -> str:
    store = KeyStore(path)
    key = store.create("client", scopes)
    store.save()
    return key


SERVERS = [pytest.param("gunicorn", id="gunicorn"), pytest.param("granian", id="granian")]


@pytest.mark.parametrize("server_name", SERVERS)
def test_self_signed_https_serves_verified_clients_only_over_tls(
    https_launcher: HttpsLauncher, tmp_path: Path, server_name: str
) -> None:
    keys_file = tmp_path / "keys.json"
    key = write_key(keys_file, ["read"])
    certfile = https_launcher.workdir / ".flaskserve-tls" / CERT_FILENAME
    server = https_launcher.start_https(
        "--tls-self-signed", "--keys-file", str(keys_file), "--server", server_name, verify=str(certfile)
    )

    response = server.get("/models", headers={"Authorization": f"Bearer {key}"})

    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert server.get("/models").status_code == 401
    fingerprint = hashlib.sha256(
        x509.load_pem_x509_certificate(certfile.read_bytes()).public_bytes(serialization.Encoding.DER)
    ).hexdigest()
    assert fingerprint.upper() in server.logs().replace(":", "")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(server.url + "/livez", timeout=5)  # the system trust store does not know it
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url.replace("https://", "http://") + "/livez", timeout=5)
    assert server.get("/livez").status_code == 200


@pytest.mark.parametrize("server_name", SERVERS)
def test_mutual_tls_refuses_a_client_without_a_certificate(
    https_launcher: HttpsLauncher, tmp_path: Path, server_name: str
) -> None:
    server_certificate = create_self_signed(tmp_path / "server")
    ca_file, client_cert, client_key = client_ca_and_certificate(tmp_path)
    server = https_launcher.start_https(
        "--certfile",
        str(server_certificate.certfile),
        "--keyfile",
        str(server_certificate.keyfile),
        "--ca-certs",
        str(ca_file),
        "--keys-file",
        str(tmp_path / "keys.json"),
        "--server",
        server_name,
        verify=str(server_certificate.certfile),
        client_cert=(str(client_cert), str(client_key)),
    )

    assert server.get("/models").status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/livez", verify=str(server_certificate.certfile), timeout=5)
