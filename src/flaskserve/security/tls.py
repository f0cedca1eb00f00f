"""TLS for the production server: a self-signed certificate for development, and gunicorn's TLS settings.

The self-signed certificate is for trying HTTPS on one machine (``localhost``,
``127.0.0.1``, ``::1``). Clients trust it by pinning the certificate file itself
(``curl --cacert cert.pem``) or by comparing the SHA-256 fingerprint the server
prints; in production, bring a certificate from a real CA.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypedDict

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from flaskserve.errors import ConfigError

__all__ = [
    "CERT_FILENAME",
    "KEY_FILENAME",
    "GunicornTLSOptions",
    "SelfSignedCertificate",
    "ServerTLS",
    "create_self_signed",
    "gunicorn_tls_options",
    "modern_ssl_context",
    "server_tls",
]

CERT_FILENAME = "flaskserve-cert.pem"
KEY_FILENAME = "flaskserve-key.pem"

_VALIDITY = timedelta(days=365)
# Renew a little before expiry, so a server started today still has a valid
# certificate next week.
_RENEW_BEFORE = timedelta(days=7)
_HOSTNAMES = ("localhost",)
_ADDRESSES = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class SelfSignedCertificate:
    """Where a certificate and its private key are, and the certificate's SHA-256 fingerprint.

    The fingerprint is colon-separated upper-case hex, as ``openssl x509 -fingerprint
    -sha256`` prints it, so an operator can compare the two by eye.
    """

    certfile: Path
    keyfile: Path
    sha256_fingerprint: str


def create_self_signed(
    directory: str | os.PathLike[str], *, now: datetime | None = None
) -> SelfSignedCertificate:
    """Return a self-signed certificate for this machine in ``directory``, creating it if needed.

    An existing pair is reused while it is valid for at least another week and its key
    matches its certificate, so clients that pinned it keep working across restarts.
    Otherwise a new EC P-256 key and a one-year certificate replace it. The key file is
    written with mode 0600. ``now`` replaces the clock, for tests.
    """
    now = now or datetime.now(timezone.utc)
    directory = Path(directory)
    certfile = directory / CERT_FILENAME
    keyfile = directory / KEY_FILENAME
    certificate = _reusable(certfile, keyfile, now)
    if certificate is None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = _self_sign(key, now)
        _write_atomically(
            keyfile,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        # The certificate is public: clients run by other users may need to read it to pin it.
        _write_atomically(certfile, certificate.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return SelfSignedCertificate(
        certfile=certfile,
        keyfile=keyfile,
        sha256_fingerprint=_fingerprint(certificate),
    )


def _reusable(certfile: Path, keyfile: Path, now: datetime) -> x509.Certificate | None:
    try:
        certificate = x509.load_pem_x509_certificate(certfile.read_bytes())
        key = serialization.load_pem_private_key(keyfile.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    fresh = certificate.not_valid_before_utc <= now and now + _RENEW_BEFORE < certificate.not_valid_after_utc
    if not fresh or key.public_key() != certificate.public_key():
        return None
    return certificate


def _self_sign(key: ec.EllipticCurvePrivateKey, now: datetime) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "flaskserve"),
            x509.NameAttribute(NameOID.COMMON_NAME, _HOSTNAMES[0]),
        ]
    )
    alternative_names: list[x509.GeneralName] = [x509.DNSName(host) for host in _HOSTNAMES]
    alternative_names += [x509.IPAddress(ipaddress.ip_address(address)) for address in _ADDRESSES]
    public_key = key.public_key()
    # A leaf certificate (CA false, server auth only) that is its own issuer: clients
    # pin it directly, and it cannot be used to sign anything else.
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        # Backdated a little so that a client whose clock runs slow accepts it.
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )


def _fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def _write_atomically(path: Path, content: bytes, mode: int = 0o600) -> None:
    """Write ``content`` to ``path`` in one step: readers see the old file or the whole new one.

    The temporary file is created with mode 0600 before any byte is written, so a
    private key is never readable by others, not even for a moment.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            if mode != 0o600:
                os.fchmod(file.fileno(), mode)
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


class GunicornTLSOptions(TypedDict):
    """Gunicorn settings that turn on TLS; pass them to gunicorn's ``Config.set`` one by one."""

    certfile: str
    keyfile: str
    ca_certs: str | None
    cert_reqs: int
    ssl_context: Callable[[Any, Callable[[], ssl.SSLContext]], ssl.SSLContext]


def modern_ssl_context(
    config: Any, default_ssl_context_factory: Callable[[], ssl.SSLContext]
) -> ssl.SSLContext:
    """Gunicorn's ``ssl_context`` hook: its default context, refusing anything older than TLS 1.2.

    Gunicorn's ``ssl_version`` setting is deprecated and ignored, and it has no
    minimum-version setting: this hook is the place gunicorn offers to set it. The
    default context already loads the certificate, the key, the client CA and
    ``cert_reqs``; TLS 1.0 and 1.1 have known weaknesses and are refused here
    whatever the Python or OpenSSL defaults are.
    """
    context = default_ssl_context_factory()
    if context.minimum_version < ssl.TLSVersion.TLSv1_2:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def gunicorn_tls_options(
    certfile: str | os.PathLike[str],
    keyfile: str | os.PathLike[str],
    ca_certs: str | os.PathLike[str] | None = None,
) -> GunicornTLSOptions:
    """The gunicorn settings for serving HTTPS with ``certfile`` and ``keyfile``.

    With ``ca_certs``, clients must present a certificate signed by one of those CAs
    (mutual TLS); without it, no client certificate is asked for. Reads no file:
    gunicorn reports a missing or unreadable one when it starts.
    """
    return GunicornTLSOptions(
        certfile=os.fspath(certfile),
        keyfile=os.fspath(keyfile),
        ca_certs=os.fspath(ca_certs) if ca_certs is not None else None,
        cert_reqs=ssl.CERT_REQUIRED if ca_certs is not None else ssl.CERT_NONE,
        ssl_context=modern_ssl_context,
    )


@dataclass(frozen=True)
class ServerTLS:
    """How the server speaks HTTPS: its files, gunicorn's settings, the self-signed certificate if made."""

    options: GunicornTLSOptions
    certfile: Path
    keyfile: Path
    #: CA bundle for client certificates: when set, clients must present one (mutual TLS).
    ca_certs: Path | None = None
    self_signed: SelfSignedCertificate | None = None


def server_tls(
    *,
    certfile: Path | None,
    keyfile: Path | None,
    ca_certs: Path | None,
    self_signed_dir: Path | None,
) -> ServerTLS | None:
    """Turn the TLS settings into gunicorn's, creating the self-signed certificate if asked; ``None`` is HTTP.

    The files are checked here so that a typo stops the server with a sentence that
    names the setting, rather than with a traceback from inside gunicorn's workers.
    """
    if self_signed_dir is not None and (certfile is not None or keyfile is not None):
        raise ConfigError("choose one: a certificate (--certfile/--keyfile) or --tls-self-signed, not both")
    if (certfile is None) != (keyfile is None):
        raise ConfigError("--certfile and --keyfile go together: give both, or neither")
    if ca_certs is not None and certfile is None and self_signed_dir is None:
        raise ConfigError("--ca-certs (mutual TLS) needs TLS: add --certfile/--keyfile or --tls-self-signed")
    for flag, path in (("--certfile", certfile), ("--keyfile", keyfile), ("--ca-certs", ca_certs)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{flag}: no such file {str(path)!r}")
    if self_signed_dir is not None:
        try:
            certificate = create_self_signed(self_signed_dir)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the self-signed certificate in {str(self_signed_dir)!r}: {exc.strerror}"
            ) from exc
        return ServerTLS(
            gunicorn_tls_options(certificate.certfile, certificate.keyfile, ca_certs),
            certificate.certfile,
            certificate.keyfile,
            ca_certs,
            certificate,
        )
    if certfile is not None and keyfile is not None:
        return ServerTLS(gunicorn_tls_options(certfile, keyfile, ca_certs), certfile, keyfile, ca_certs)
    return None
