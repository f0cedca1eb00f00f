"""``flaskserve keys``: the command-line face of the key store."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from flaskserve.security.commands import keys_command
from flaskserve.security.keys import KeyStore


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return tmp_path / "keys.json"


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner(env=env).invoke(keys_command, list(args))


def test_create_prints_the_key_alone_on_stdout_and_stores_its_hash(keys_file: Path) -> None:
    result = run(
        "create", "--name", "ci", "--scope", "predict", "--scope", "read", "--keys-file", str(keys_file)
    )

    assert result.exit_code == 0, result.output
    plaintext = result.stdout.strip()
    assert plaintext.startswith("fs_")
    assert "\n" not in plaintext
    assert "shown only this once" in result.stderr
    key = KeyStore.load(keys_file).verify(plaintext)
    assert key is not None
    assert key.scopes == frozenset({"predict", "read"})
    assert plaintext not in keys_file.read_text()


def test_the_keys_file_can_come_from_the_environment(keys_file: Path) -> None:
    result = run("create", "--name", "ci", "--scope", "metrics", env={"FLASKSERVE_KEYS_FILE": str(keys_file)})

    assert result.exit_code == 0, result.output
    assert [key.name for key in KeyStore.load(keys_file).list()] == ["ci"]


def test_the_keys_file_defaults_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    result = run("create", "--name", "ci", "--scope", "read", env={"FLASKSERVE_KEYS_FILE": None})

    assert result.exit_code == 0, result.output
    assert (tmp_path / "flaskserve-keys.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--name", "ci", "--scope", "perdict"], "unknown scope 'perdict'", id="unknown scope"),
        pytest.param(["--name", "bad name", "--scope", "read"], "invalid key name", id="bad name"),
        pytest.param(["--name", "ci"], "Missing option '--scope'", id="no scope"),
        pytest.param(["--scope", "read"], "Missing option '--name'", id="no name"),
    ],
)
def test_create_rejects_bad_input_without_touching_the_file(
    keys_file: Path, args: list[str], message: str
) -> None:
    result = run("create", *args, "--keys-file", str(keys_file))

    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""
    assert not keys_file.exists()


def test_create_refuses_a_duplicate_name(keys_file: Path) -> None:
    run("create", "--name", "ci", "--scope", "read", "--keys-file", str(keys_file))

    result = run("create", "--name", "ci", "--scope", "admin", "--keys-file", str(keys_file))

    assert result.exit_code == 1
    assert "already exists" in result.stderr
    assert result.stdout == ""


def test_list_shows_names_scopes_and_dates_but_never_keys(keys_file: Path) -> None:
    first = run("create", "--name", "web", "--scope", "predict:iris", "--keys-file", str(keys_file)).stdout
    run("create", "--name", "ci", "--scope", "read", "--scope", "metrics", "--keys-file", str(keys_file))

    result = run("list", "--keys-file", str(keys_file))

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SCOPES", "CREATED"]
    assert [line.split()[:2] for line in lines[1:]] == [["ci", "metrics,read"], ["web", "predict:iris"]]
    assert first.strip() not in result.stdout


def test_list_without_keys_says_how_to_create_one(keys_file: Path) -> None:
    result = run("list", "--keys-file", str(keys_file))

    assert result.exit_code == 0
    assert result.stdout == ""
    assert "flaskserve keys create" in result.stderr


def test_revoke_removes_the_key(keys_file: Path) -> None:
    plaintext = run("create", "--name", "ci", "--scope", "read", "--keys-file", str(keys_file)).stdout.strip()

    result = run("revoke", "ci", "--keys-file", str(keys_file))

    assert result.exit_code == 0, result.output
    assert KeyStore.load(keys_file).verify(plaintext) is None


def test_revoke_of_an_unknown_name_fails(keys_file: Path) -> None:
    result = run("revoke", "ghost", "--keys-file", str(keys_file))

    assert result.exit_code == 1
    assert "no key named 'ghost'" in result.stderr


def test_a_broken_keys_file_is_reported(keys_file: Path) -> None:
    keys_file.write_text("{broken")

    result = run("list", "--keys-file", str(keys_file))

    assert result.exit_code == 1
    assert "not a valid flaskserve key file" in result.stderr
