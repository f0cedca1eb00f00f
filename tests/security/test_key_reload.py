"""A key revoked while the server runs is refused from the next look at the key file, without a restart."""

from __future__ import annotations

from pathlib import Path

from flaskserve.app import create_app
from flaskserve.runtime import get_runtime
from flaskserve.security.keys import KeyStore
from flaskserve.settings import load_settings


def test_a_revoked_key_is_refused_after_one_look_and_a_new_key_accepted(
    repository: Path, tmp_path: Path
) -> None:
    keys_file = tmp_path / "keys.json"
    store = KeyStore.load(keys_file)
    kept, revoked = store.create("kept", ["predict"]), store.create("leaked", ["predict"])
    store.save()
    app = create_app(load_settings(None, model_path=repository, keys_file=keys_file, allow_pickle=True))
    client = app.test_client()

    def status(key: str) -> int:
        return client.post(
            "/models/linear/predict", json={"x": 1, "y": 2}, headers={"X-API-Key": key}
        ).status_code

    assert status(revoked) == 200
    store.revoke("leaked")
    added = store.create("new", ["predict"])
    store.save()
    assert status(revoked) == 200, "until the next look, the keys read at start stay in force"

    get_runtime(app).watcher.look()

    assert status(revoked) == 401
    assert status(kept) == 200
    assert status(added) == 200


def test_a_key_file_emptied_while_serving_does_not_open_the_server(repository: Path, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    store = KeyStore.load(keys_file)
    key = store.create("only", ["predict"])
    store.save()
    app = create_app(load_settings(None, model_path=repository, keys_file=keys_file, allow_pickle=True))
    store.revoke("only")
    store.save()

    get_runtime(app).watcher.look()

    client = app.test_client()
    assert client.post("/models/linear/predict", json={"x": 1, "y": 2}).status_code == 401
    assert (
        client.post("/models/linear/predict", json={"x": 1, "y": 2}, headers={"X-API-Key": key}).status_code
        == 200
    )
