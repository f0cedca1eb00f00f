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

from flaskserve.security.keys import KeyStore, KeyStoreError, normalize_scope, validate_name

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
