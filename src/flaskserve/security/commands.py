"""``flaskserve keys``: create, list and revoke API keys from the command line.

A new key is printed once, alone on standard output, so a script can capture it
(``KEY=$(flaskserve keys create --name ci --scope predict)``); everything meant for a
person goes to standard error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from flaskserve.errors import KeyStoreError
from flaskserve.security.keys import KeyStore, normalize_scope, validate_name

__all__ = ["DEFAULT_KEYS_FILE", "keys_command"]

#: Where keys live when neither ``--keys-file`` nor ``FLASKSERVE_KEYS_FILE`` says otherwise.
DEFAULT_KEYS_FILE = "flaskserve-keys.json"

_F = TypeVar("_F", bound=Callable[..., object])


def _keys_file_option(function: _F) -> _F:
    option = click.option(
        "--keys-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=DEFAULT_KEYS_FILE,
        show_default=True,
        envvar="FLASKSERVE_KEYS_FILE",
        show_envvar=True,
        help="The JSON file that stores the key hashes.",
    )
    return option(function)


def _check_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return validate_name(value)
    except KeyStoreError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


def _check_scopes(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    try:
        return tuple(normalize_scope(scope) for scope in value)
    except KeyStoreError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


def _load(path: Path) -> KeyStore:
    try:
        return KeyStore.load(path)
    except KeyStoreError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("keys")
def keys_command() -> None:
    """Create, list and revoke API keys.

    The server asks for a key on every route except health checks as soon as the
    key file holds at least one key. Changes take effect when the server restarts.
    """


@keys_command.command("create")
@click.option("--name", required=True, callback=_check_name, help="A name for the key, shown in logs.")
@click.option(
    "--scope",
    "scopes",
    required=True,
    multiple=True,
    callback=_check_scopes,
    help="What the key may do: predict, predict:MODEL, read, metrics or admin. Repeat for several.",
)
@_keys_file_option
def create_command(name: str, scopes: tuple[str, ...], keys_file: Path) -> None:
    """Create a key and print it. The key is shown only this once: store it now."""
    store = _load(keys_file)
    try:
        plaintext = store.create(name, scopes)
    except KeyStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    store.save()
    click.echo(plaintext)
    click.echo(
        f"Created key {name!r} with scopes {', '.join(sorted(set(scopes)))} in {keys_file}. "
        "It is shown only this once; send it as 'Authorization: Bearer <key>'.",
        err=True,
    )


@keys_command.command("list")
@_keys_file_option
def list_command(keys_file: Path) -> None:
    """List the keys: name, scopes and creation time (never the keys themselves)."""
    keys = _load(keys_file).list()
    if not keys:
        click.echo(f"No keys in {keys_file}; create one with 'flaskserve keys create'.", err=True)
        return
    rows = [("NAME", "SCOPES", "CREATED")]
    rows += [(key.name, ",".join(sorted(key.scopes)), key.created_at.isoformat()) for key in keys]
    name_width = max(len(row[0]) for row in rows)
    scopes_width = max(len(row[1]) for row in rows)
    for name, scopes, created in rows:
        click.echo(f"{name:<{name_width}}  {scopes:<{scopes_width}}  {created}")


@keys_command.command("revoke")
@click.argument("name")
@_keys_file_option
def revoke_command(name: str, keys_file: Path) -> None:
    """Delete the key called NAME; it stops working when the server restarts."""
    store = _load(keys_file)
    try:
        store.revoke(name)
    except KeyStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    store.save()
    click.echo(f"Revoked key {name!r}.", err=True)


#: Where ``flaskserve serve --tls-self-signed`` keeps its certificate
#: unless the ``tls_self_signed`` setting names a directory.
DEFAULT_TLS_DIR = Path(".flaskserve-tls")


def serve_security_options(command: _F) -> _F:
    """The options of ``flaskserve serve`` for keys, TLS, rate limits, proxies and CORS.

    Each becomes the setting of the same meaning (``--certfile`` is ``tls_certfile``),
    except ``--tls-self-signed``, a flag: it lands in ``tls_self_signed_flag`` and
    :func:`self_signed_directory` turns it into a directory.
    """
    options = [
        click.option(
            "--keys-file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help=f"API key file (default {DEFAULT_KEYS_FILE}); once it holds a key, every route but "
            "the health checks needs one.",
        ),
        click.option(
            "--insecure",
            is_flag=True,
            default=None,
            help="Serve on a non-loopback address without API keys (refused otherwise).",
        ),
        click.option(
            "--certfile",
            "tls_certfile",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="PEM certificate (chain): serve HTTPS. Needs --keyfile.",
        ),
        click.option(
            "--keyfile",
            "tls_keyfile",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="PEM private key of --certfile.",
        ),
        click.option(
            "--ca-certs",
            "tls_ca_certs",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="CA certificates for client certificates: turns on mutual TLS.",
        ),
        click.option(
            "--tls-self-signed",
            "tls_self_signed_flag",
            is_flag=True,
            default=False,
            help=f"Serve HTTPS with a self-signed certificate for localhost, kept in {DEFAULT_TLS_DIR}/ "
            "(or the tls_self_signed directory). For development only.",
        ),
        click.option(
            "--rate-limit",
            default=None,
            help="Requests each client may make per model and route class, e.g. '100/minute' "
            "(default: no limit).",
        ),
        click.option(
            "--rate-limit-storage",
            default=None,
            help="Where rate-limit counters live: memory:// (per worker, the default) or "
            "redis://HOST:PORT/DB (shared by all workers and replicas).",
        ),
        click.option(
            "--rate-limit-fallback",
            type=click.Choice(["memory", "refuse"]),
            default=None,
            help="When the counters' storage is down: count in memory (default) or answer 503.",
        ),
        click.option(
            "--trusted-proxies",
            type=click.IntRange(min=0),
            default=None,
            help="Reverse proxies in front of the server whose X-Forwarded-For entry is trusted (default 0).",
        ),
        click.option(
            "--cors-origin",
            "cors_origins",
            multiple=True,
            help="An origin whose web pages may call the API, e.g. https://app.example.com; '*' for any "
            "(repeatable; default: CORS off).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def self_signed_directory(flag: bool, configured: Path | None) -> Path | None:
    """The self-signed certificate's directory: the configured one, else the default if the flag is on."""
    if configured is not None:
        return configured
    return DEFAULT_TLS_DIR if flag else None
