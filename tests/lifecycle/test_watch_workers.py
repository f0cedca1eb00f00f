"""What one worker's watcher decides, every worker serves: two apps sharing a run directory, as workers do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask import Flask

from flaskserve.app import create_app
from flaskserve.runtime import get_runtime
from flaskserve.settings import load_settings


def test_the_other_worker_follows_the_watcher_through_the_journal(
    models: Path, tmp_path: Path, add_version: Callable[..., Path]
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    settings = load_settings(None, model_path=models, watch=True, keys_file=tmp_path / "keys.json")
    workers: list[Flask] = [create_app(settings, run_dir=run_dir) for _ in range(2)]
    watching, other = (get_runtime(app).watcher for app in workers)
    broken = models / "linear" / "3" / "model.skops"

    for _ in range(2):
        watching.look()
        other.look()  # not the lock holder: looks at the key file only
    add_version("2")
    broken.parent.mkdir()
    broken.write_bytes(b"garbage")
    for _ in range(2):
        watching.look()
        other.look()

    client = workers[1].test_client()
    response = client.post("/models/linear/predict", json={"x": 0, "y": 0})
    assert response.headers["X-Model-Version"] == "2"
    rows = client.post("/v2/repository/index").get_json()
    assert [(r["version"], r["state"], r["reason"].split(":")[0]) for r in rows if r["name"] == "linear"] == [
        ("1", "READY", ""),
        ("2", "READY", ""),
        ("3", "UNAVAILABLE", "failed"),
    ]
