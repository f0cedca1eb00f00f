"""The API key store: creating, verifying, revoking and persisting keys."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest

from flaskserve.errors import KeyStoreError
from flaskserve.security.keys import ApiKey, KeyStore


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return tmp_path / "keys.json"


@pytest.fixture
def store(keys_file: Path) -> KeyStore:
    return KeyStore.load(keys_file)


def make_key(*scopes: str) -> ApiKey:
    return ApiKey(name="k", scopes=frozenset(scopes), created_at=datetime(2025, 1, 1, tzinfo=timezone.utc))


def test_a_missing_key_file_is_an_empty_store(store: KeyStore) -> None:
    assert len(store) == 0
    assert store.list() == []


def test_a_created_key_is_a_random_prefixed_token_that_verifies(store: KeyStore) -> None:
    plaintext = store.create("ci", ["predict"])

    assert plaintext.startswith("fs_")
    assert len(plaintext) >= 40
    key = store.verify(plaintext)
    assert key is not None
    assert key.name == "ci"
    assert key.scopes == frozenset({"predict"})
    assert key.created_at.tzinfo is not None


def test_every_key_is_different(store: KeyStore) -> None:
    assert store.create("a", ["read"]) != store.create("b", ["read"])


@pytest.mark.parametrize(
    "presented",
    [
        pytest.param("", id="empty"),
        pytest.param("fs_not-a-key", id="wrong key"),
        pytest.param("x" * 10_000, id="very long"),
    ],
)
def test_anything_else_does_not_verify(store: KeyStore, presented: str) -> None:
    store.create("ci", ["predict"])

    assert store.verify(presented) is None


def test_a_key_with_one_character_changed_does_not_verify(store: KeyStore) -> None:
    plaintext = store.create("ci", ["predict"])
    tampered = plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")

    assert store.verify(tampered) is None


def test_the_key_file_holds_only_the_hash_and_is_private(store: KeyStore, keys_file: Path) -> None:
    plaintext = store.create("ci", ["predict:iris", "read"])
    store.save()

    text = keys_file.read_text()
    assert plaintext not in text
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    [entry] = json.loads(text)["keys"]
    assert entry["name"] == "ci"
    assert entry["scopes"] == ["predict:iris", "read"]
    assert entry["sha256"] == hashlib.sha256(plaintext.encode()).hexdigest()


def test_saved_keys_verify_after_loading_again(store: KeyStore, keys_file: Path) -> None:
    plaintext = store.create("ci", ["metrics"])
    store.save()

    reloaded = KeyStore.load(keys_file)

    assert reloaded.list() == store.list()
    assert reloaded.verify(plaintext) == store.verify(plaintext)


def test_saving_leaves_no_temporary_file_behind(store: KeyStore, keys_file: Path) -> None:
    store.create("ci", ["read"])
    store.save()
    store.save()

    assert [path.name for path in keys_file.parent.iterdir()] == [keys_file.name]


def test_a_revoked_key_no_longer_verifies(store: KeyStore, keys_file: Path) -> None:
    revoked = store.create("old", ["predict"])
    kept = store.create("new", ["predict"])
    store.revoke("old")
    store.save()

    reloaded = KeyStore.load(keys_file)

    assert reloaded.verify(revoked) is None
    assert reloaded.verify(kept) is not None
    assert [key.name for key in reloaded.list()] == ["new"]


def test_revoking_an_unknown_name_says_how_to_find_names(store: KeyStore) -> None:
    with pytest.raises(KeyStoreError, match=r"no key named 'ghost'.*keys list"):
        store.revoke("ghost")


def test_keys_are_listed_by_name(store: KeyStore) -> None:
    for name in ["b", "c", "a"]:
        store.create(name, ["read"])

    assert [key.name for key in store.list()] == ["a", "b", "c"]


def test_a_duplicate_name_is_an_error(store: KeyStore) -> None:
    store.create("ci", ["read"])

    with pytest.raises(KeyStoreError, match="already exists"):
        store.create("ci", ["predict"])


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("has space", id="space"),
        pytest.param("semi;colon", id="punctuation"),
        pytest.param("x" * 65, id="too long"),
        pytest.param("ünïcode", id="non-ascii"),
    ],
)
def test_invalid_names_are_rejected(store: KeyStore, name: str) -> None:
    with pytest.raises(KeyStoreError, match="invalid key name"):
        store.create(name, ["read"])


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("ci-deploy_2.0", id="all allowed punctuation"),
        pytest.param("x" * 64, id="64 characters"),
    ],
)
def test_valid_names_are_accepted(store: KeyStore, name: str) -> None:
    store.create(name, ["read"])

    assert [key.name for key in store.list()] == [name]


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        pytest.param("perdict", "unknown scope 'perdict': choose from predict, predict:MODEL", id="typo"),
        pytest.param("read:iris", "unknown scope", id="model on a scope that takes none"),
        pytest.param("predict:", "write the model name after 'predict:'", id="empty model"),
        pytest.param("predict:a b", "write the model name", id="model with space"),
    ],
)
def test_unknown_scopes_are_rejected_with_the_choices(store: KeyStore, scope: str, message: str) -> None:
    with pytest.raises(KeyStoreError, match=message):
        store.create("ci", [scope])
    assert len(store) == 0


def test_a_key_needs_a_scope(store: KeyStore) -> None:
    with pytest.raises(KeyStoreError, match="at least one scope"):
        store.create("ci", [])


@pytest.mark.parametrize(
    ("scopes", "scope", "model", "allowed"),
    [
        pytest.param(["predict"], "predict", "iris", True, id="predict allows any model"),
        pytest.param(["predict"], "predict", None, True, id="predict allows the default model"),
        pytest.param(["predict:iris"], "predict", "iris", True, id="predict:iris allows iris"),
        pytest.param(["predict:iris"], "predict", "wine", False, id="predict:iris refuses wine"),
        pytest.param(["predict:iris"], "predict", None, False, id="predict:iris refuses the default model"),
        pytest.param(["predict"], "read", None, False, id="predict does not allow read"),
        pytest.param(["read"], "predict", "iris", False, id="read does not allow predict"),
        pytest.param(["read"], "read", None, True, id="read allows read"),
        pytest.param(["read"], "metrics", None, False, id="read does not allow metrics"),
        pytest.param(["metrics"], "metrics", None, True, id="metrics allows metrics"),
        pytest.param(["read", "metrics"], "admin", None, False, id="no scope implies admin"),
        pytest.param(["admin"], "predict", "iris", True, id="admin allows predict"),
        pytest.param(["admin"], "metrics", None, True, id="admin allows metrics"),
        pytest.param(["admin"], "admin", None, True, id="admin allows admin"),
        pytest.param(["read"], "open", None, True, id="any key may use open routes"),
        pytest.param(["read"], "predict:iris", None, False, id="unknown asked scope fails closed"),
    ],
)
def test_what_a_key_allows(scopes: list[str], scope: str, model: str | None, allowed: bool) -> None:
    assert make_key(*scopes).allows(scope, model) is allowed


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("{not json", id="not json"),
        pytest.param("[]", id="not an object"),
        pytest.param('{"version": 99, "keys": []}', id="unknown version"),
        pytest.param('{"version": 1, "keys": [{"name": "ci"}]}', id="entry without hash"),
        pytest.param(
            '{"version": 1, "keys": [{"name": "ci", "sha256": "00", "scopes": [],'
            ' "created_at": "2025-01-01"}]}',
            id="short hash",
        ),
        pytest.param(
            '{"version": 1, "keys": [{"name": "ci", "sha256": "' + "0" * 64 + '", "scopes": ["root"],'
            ' "created_at": "2025-01-01T00:00:00+00:00"}]}',
            id="unknown scope",
        ),
    ],
)
def test_a_broken_key_file_is_reported_not_ignored(keys_file: Path, content: str) -> None:
    keys_file.write_text(content)

    with pytest.raises(KeyStoreError, match="not a valid flaskserve key file"):
        KeyStore.load(keys_file)
