"""The run directory turns read-only or fills up under a running server.

The run directory holds the repository journal, through which a model loaded or
unloaded by one worker reaches the others. When it cannot be written, a load or
unload must fail with a clear JSON error (503 ``journal_unavailable``) and change
nothing in any worker, while predictions go on being served; once the directory
is writable again, actions work again without a restart.

Read-only is a read-only bind mount of the directory as root (permissions bind
no root process), or ``chmod`` otherwise; full is a 64 KiB tmpfs mounted over it
and filled, which needs root with the right to mount.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from flaskserve import testing
from flaskserve.app import create_app
from flaskserve.security import audit
from flaskserve.settings import load_settings
from live_server import RunningServer

IRIS_ROW = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"this fault needs 'mount', which was refused: {done.stderr.strip()}")


def _unmount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True, check=True)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[str]:
    """Make ``path`` read-only for the server; yields the system's words for the failure."""
    if IS_ROOT:
        _mount("--bind", str(path), str(path))
        try:
            _mount("-o", "remount,bind,ro", str(path))
            yield "Read-only file system"
        finally:
            _unmount(path)
        return
    modes = {p: p.stat().st_mode for p in [path, *path.iterdir()]}
    for p in modes:
        p.chmod(0o500 if p.is_dir() else 0o400)
    try:
        yield "Permission denied"
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


@contextlib.contextmanager
def full(path: Path) -> Iterator[str]:
    """Mount a 64 KiB tmpfs over ``path`` holding a copy of its files, and fill it up."""
    if not IS_ROOT:
        pytest.skip("filling the run directory needs root to mount a small tmpfs; chmod cannot fake ENOSPC")
    with tempfile.TemporaryDirectory() as aside:
        for file in path.iterdir():
            shutil.copy2(file, aside)
        _mount("-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(path))
        try:
            for file in Path(aside).iterdir():
                shutil.copy2(file, path)
            with contextlib.suppress(OSError), (path / "filler").open("wb") as filler:
                for _ in range(64):
                    filler.write(b"\0" * 4096)
                    filler.flush()
            yield "No space left on device"
        finally:
            _unmount(path)


FAULTS = [pytest.param(read_only, id="read-only"), pytest.param(full, id="full")]


# -- in one process: two apps sharing a run directory stand in for two workers ------------------


@pytest.fixture
def repo(repository: Path, tmp_path: Path) -> Path:
    """A copy of the test repository, where a test adds versions."""
    return Path(shutil.copytree(repository, tmp_path / "repo"))


def add_iris_version_3(repo: Path, model: Any) -> None:
    """A new version on disk, served only once a load succeeds."""
    testing.save_model(model, repo / "iris" / "3" / "model.skops")


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir()
    return path


@pytest.fixture
def make_app(repo: Path, run_dir: Path) -> Callable[[], Flask]:
    def build() -> Flask:
        settings = load_settings(None, model_path=repo, allow_pickle=True, default_model="linear")
        return create_app(settings, run_dir=run_dir)

    return build


def served_iris(client: Any) -> str:
    response = client.post("/v2/models/iris/infer", json=IRIS_ROW)
    assert response.status_code == 200
    version: str = response.headers["X-Model-Version"]
    return version


@pytest.mark.parametrize("fault", FAULTS)
def test_actions_fail_clearly_and_change_nothing_while_predictions_go_on(
    make_app: Callable[[], Flask],
    repo: Path,
    run_dir: Path,
    fault: Callable[[Path], Any],
    iris_classifier: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=audit.AUDIT_LOGGER)
    first, second = make_app().test_client(), make_app().test_client()
    assert served_iris(first) == served_iris(second) == "2"
    add_iris_version_3(repo, iris_classifier)

    with fault(run_dir) as reason:
        load = first.post("/v2/repository/models/iris/load")
        unload = second.post("/v2/repository/models/iris/unload")
        predictions = [c.post("/predict", json={"x": 1, "y": 2}).status_code for c in (first, second)]
        during = [served_iris(first), served_iris(second)]

    for response in (load, unload):
        assert response.status_code == 503
        body = response.get_json()
        assert body["code"] == "journal_unavailable"
        assert reason in body["error"]
        assert "unchanged" in body["error"]
        assert str(run_dir) not in body["error"]
    assert predictions == [200, 200]
    audited = [vars(r) for r in caplog.records if r.name == audit.AUDIT_LOGGER]
    assert [(r["action"], r["outcome"]) for r in audited] == [("load", "failed"), ("unload", "failed")]
    assert during == ["2", "2"], "a failed journal append must not load version 3 anywhere"

    assert first.post("/v2/repository/models/iris/load").status_code == 200
    assert served_iris(first) == served_iris(second) == "3"


def test_a_worker_that_cannot_read_the_journal_keeps_serving_its_models(
    make_app: Callable[[], Flask],
    repo: Path,
    run_dir: Path,
    iris_classifier: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = make_app().test_client(), make_app().test_client()
    add_iris_version_3(repo, iris_classifier)
    assert first.post("/v2/repository/models/iris/load").status_code == 200
    # The journal's name now names something no worker can read as a file.
    journal = run_dir / "repository.journal"
    journal.rename(run_dir / "aside")
    journal.mkdir()

    served = [served_iris(second) for _ in range(3)]
    unreadable = [r for r in caplog.records if "cannot read the repository journal" in r.getMessage()]

    assert served == ["2", "2", "2"]
    assert len(unreadable) == 1, "logged once, not once per request"

    journal.rmdir()
    (run_dir / "aside").rename(journal)
    assert served_iris(second) == "3"


# -- a real two-worker server ------------------------------------------------------------------


@pytest.mark.e2e
def test_a_server_whose_run_directory_breaks_keeps_serving_and_recovers(
    start_server: Callable[..., RunningServer], repo: Path, iris_classifier: Any
) -> None:
    server = start_server(model_path=repo, workers=2)
    add_iris_version_3(repo, iris_classifier)
    (run,) = server.tmp_dir.glob("flaskserve-run-*")

    class Fresh:
        """Each request on a new connection, so that the requests reach both workers."""

        @staticmethod
        def post(path: str, **kwargs: Any) -> requests.Response:
            return requests.post(server.url + path, timeout=10, **kwargs)

    def predictions(count: int) -> set[int]:
        return {Fresh.post("/predict", json={"x": 1, "y": 2}).status_code for _ in range(count)}

    outcomes: dict[str, tuple[int, str, set[int]]] = {}
    faults = [full, read_only] if IS_ROOT else [read_only]
    for fault in faults:
        with fault(run) as reason:
            response = server.post("/v2/repository/models/iris/load")
            outcomes[fault.__name__] = (response.status_code, response.json()["code"], predictions(20))
            assert reason in response.json()["error"]
            assert server.get("/readyz").status_code == 200
            assert {served_iris(Fresh) for _ in range(10)} == {"2"}

    assert outcomes == {name: (503, "journal_unavailable", {200}) for name in outcomes}
    assert server.post("/v2/repository/models/iris/load").status_code == 200
    assert {served_iris(Fresh) for _ in range(10)} == {"3"}
