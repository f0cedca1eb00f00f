"""The self-signed certificate, checked by a real TLS handshake, and gunicorn's TLS settings."""

from __future__ import annotations

import hashlib
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from gunicorn.config import Config
from gunicorn.sock import ssl_context as gunicorn_ssl_context

from flaskserve.errors import ConfigError
from flaskserve.security.tls import (
    SelfSignedCertificate,
    create_self_signed,
    gunicorn_tls_options,
    server_tls,
)

GREETING = b"hello over tls"


@pytest.fixture
def certificate(tmp_path: Path) -> SelfSignedCertificate:
    return create_self_signed(tmp_path / "tls")


@pytest.fixture
def server(certificate: SelfSignedCertificate) -> Iterator[tuple[str, int]]:
    """A TLS server on 127.0.0.1 that sends a greeting to every client that completes a handshake."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.certfile, certificate.keyfile)
    listener = socket.create_server(("127.0.0.1", 0))
    # Short accept timeouts let the thread notice ``stop`` soon after the test ends.
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.settimeout(5)
            try:
                with context.wrap_socket(connection, server_side=True) as tls:
                    tls.sendall(GREETING)
            except (ssl.SSLError, OSError):
                # A client that refused the certificate: the test checks the client side.
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[:2]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def fetch(address: tuple[str, int], context: ssl.SSLContext, server_hostname: str) -> tuple[bytes, bytes]:
    """Connect, verify, and return what the server sent and the certificate it presented (DER)."""
    with (
        socket.create_connection(address, timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        presented = tls.getpeercert(binary_form=True)
        assert presented is not None
        return tls.recv(len(GREETING)), presented


@pytest.mark.parametrize(
    "hostname",
    [
        pytest.param("localhost", id="localhost"),
        pytest.param("127.0.0.1", id="ipv4 loopback"),
        pytest.param("::1", id="ipv6 loopback"),
    ],
)
def test_a_client_that_pins_the_certificate_connects(
    server: tuple[str, int], certificate: SelfSignedCertificate, hostname: str
) -> None:
    context = ssl.create_default_context(cafile=certificate.certfile)

    received, presented = fetch(server, context, hostname)

    assert received == GREETING
    fingerprint = hashlib.sha256(presented).hexdigest()
    assert certificate.sha256_fingerprint.replace(":", "").lower() == fingerprint


def test_a_client_with_strict_verification_connects(
    server: tuple[str, int], certificate: SelfSignedCertificate
) -> None:
    context = ssl.create_default_context(cafile=certificate.certfile)
    context.verify_flags |= ssl.VERIFY_X509_STRICT

    received, _ = fetch(server, context, "localhost")

    assert received == GREETING


def test_the_certificate_does_not_cover_other_names(
    server: tuple[str, int], certificate: SelfSignedCertificate
) -> None:
    context = ssl.create_default_context(cafile=certificate.certfile)

    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        fetch(server, context, "example.com")


def test_a_client_that_does_not_pin_it_refuses_it(server: tuple[str, int]) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

    with pytest.raises(ssl.SSLCertVerificationError, match="self-signed"):
        fetch(server, context, "localhost")


def test_the_fingerprint_is_written_as_openssl_prints_it(certificate: SelfSignedCertificate) -> None:
    parsed = x509.load_pem_x509_certificate(certificate.certfile.read_bytes())
    expected = ":".join(f"{byte:02X}" for byte in hashlib.sha256(parsed.public_bytes(Encoding.DER)).digest())

    assert certificate.sha256_fingerprint == expected


def test_the_private_key_is_readable_by_its_owner_only(certificate: SelfSignedCertificate) -> None:
    assert stat.S_IMODE(certificate.keyfile.stat().st_mode) == 0o600


def test_the_certificate_is_valid_for_a_year_and_not_a_ca(certificate: SelfSignedCertificate) -> None:
    parsed = x509.load_pem_x509_certificate(certificate.certfile.read_bytes())

    lifetime = parsed.not_valid_after_utc - datetime.now(timezone.utc)
    assert timedelta(days=364) < lifetime <= timedelta(days=365)
    assert parsed.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_an_existing_valid_pair_is_reused(tmp_path: Path) -> None:
    first = create_self_signed(tmp_path)
    key_before = first.keyfile.read_bytes()

    second = create_self_signed(tmp_path)

    assert second == first
    assert second.keyfile.read_bytes() == key_before


def test_an_expiring_pair_is_replaced(tmp_path: Path) -> None:
    old = create_self_signed(tmp_path, now=datetime.now(timezone.utc) - timedelta(days=364))

    new = create_self_signed(tmp_path)

    assert new.sha256_fingerprint != old.sha256_fingerprint
    assert new.certfile == old.certfile


def test_a_pair_whose_key_does_not_match_is_replaced(tmp_path: Path) -> None:
    first = create_self_signed(tmp_path / "a")
    other = create_self_signed(tmp_path / "b")
    first.keyfile.write_bytes(other.keyfile.read_bytes())

    replaced = create_self_signed(tmp_path / "a")

    assert replaced.sha256_fingerprint not in {first.sha256_fingerprint, other.sha256_fingerprint}


def test_a_damaged_certificate_is_replaced(tmp_path: Path) -> None:
    first = create_self_signed(tmp_path)
    first.certfile.write_text("not a certificate")

    replaced = create_self_signed(tmp_path)

    x509.load_pem_x509_certificate(replaced.certfile.read_bytes())
    assert replaced.sha256_fingerprint != first.sha256_fingerprint


def gunicorn_context(**options: object) -> ssl.SSLContext:
    """The SSL context gunicorn builds from ``options``, through its own code path."""
    config = Config()
    for name, value in options.items():
        config.set(name, value)
    context: ssl.SSLContext = gunicorn_ssl_context(config)
    return context


def test_gunicorn_serves_tls_1_2_or_newer_without_client_certificates(
    certificate: SelfSignedCertificate,
) -> None:
    options = gunicorn_tls_options(certificate.certfile, certificate.keyfile)

    context = gunicorn_context(**options)

    assert options["certfile"] == str(certificate.certfile)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE


def test_gunicorn_requires_client_certificates_when_given_a_ca(
    tmp_path: Path, certificate: SelfSignedCertificate
) -> None:
    client = create_self_signed(tmp_path / "client")
    options = gunicorn_tls_options(certificate.certfile, certificate.keyfile, ca_certs=client.certfile)

    context = gunicorn_context(**options)

    assert options["ca_certs"] == str(client.certfile)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_gunicorn_keeps_a_stricter_minimum_it_was_given(certificate: SelfSignedCertificate) -> None:
    options = gunicorn_tls_options(certificate.certfile, certificate.keyfile)
    hook = options["ssl_context"]

    def tls13_only() -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        return context

    assert hook(Config(), tls13_only).minimum_version == ssl.TLSVersion.TLSv1_3


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        pytest.param({"certfile": "cert.pem"}, "go together", id="certificate without key"),
        pytest.param({"ca_certs": "ca.pem"}, "needs TLS", id="client CA without TLS"),
        pytest.param(
            {"certfile": "cert.pem", "keyfile": "key.pem", "self_signed": True}, "choose one", id="both kinds"
        ),
        pytest.param({"certfile": "missing.pem", "keyfile": "key.pem"}, "no such file", id="missing file"),
    ],
)
def test_inconsistent_tls_settings_stop_the_server_with_a_sentence(
    tmp_path: Path, options: dict[str, object], problem: str
) -> None:
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).write_text("placeholder")

    def path(option: str) -> Path | None:
        value = options.get(option)
        return tmp_path / str(value) if value is not None else None

    with pytest.raises(ConfigError, match=problem):
        server_tls(
            certfile=path("certfile"),
            keyfile=path("keyfile"),
            ca_certs=path("ca_certs"),
            self_signed_dir=tmp_path / "self-signed" if options.get("self_signed") else None,
        )


def test_self_signed_server_tls_creates_its_certificate_and_asks_clients_for_theirs(
    tmp_path: Path,
) -> None:
    (tmp_path / "ca.pem").write_text("placeholder")

    tls = server_tls(
        certfile=None, keyfile=None, ca_certs=tmp_path / "ca.pem", self_signed_dir=tmp_path / "tls"
    )

    assert tls is not None
    assert tls.self_signed is not None
    assert tls.self_signed.certfile.is_file()
    assert tls.options["cert_reqs"] == ssl.CERT_REQUIRED
    assert server_tls(certfile=None, keyfile=None, ca_certs=None, self_signed_dir=None) is None
