"""Fixtures for the security tests: API keys on disk, a Redis to count in, and HTTPS servers.

Plain-HTTP servers come from ``start_server`` (``tests/e2e/conftest.py`` and
``tests/live_server.py``); ``start_https_server`` here adds what HTTPS needs: a
client that trusts the server's certificate, and a readiness probe over TLS.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from tls_server import HttpsLauncher

from flaskserve.security.keys import KeyStore
from live_server import RunningServer, free_port

#: The Redis database the tests count in, away from the default database 0.
REDIS_DB = 13


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return tmp_path / "keys.json"


@pytest.fixture
def make_key(keys_file: Path) -> Callable[..., str]:
    """Create a key with ``scopes`` in ``keys_file`` and return it (create keys before the server starts)."""

    def create(name: str, *scopes: str) -> str:
        store = KeyStore.load(keys_file)
        key = store.create(name, scopes or ("predict",))
        store.save()
        return key

    return create


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://HOST:PORT``: the local Redis if one answers, else a ``redis-server`` of the session's own."""
    if _answers(f"redis://127.0.0.1:6379/{REDIS_DB}"):
        yield "redis://127.0.0.1:6379"
        return
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("no Redis answers on 127.0.0.1:6379 and redis-server is not installed")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while not _answers(f"{url}/{REDIS_DB}"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("redis-server did not start")
        time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def redis_storage(redis_server: str) -> Iterator[tuple[str, str, redis.Redis]]:
    """(storage URI, key prefix, client): a prefix of this test's own, its keys deleted afterwards."""
    url = f"{redis_server}/{REDIS_DB}"
    prefix = f"flaskserve-test-{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(url)
    yield url, prefix, client
    for key in client.scan_iter(match=f"*{prefix}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def start_server(repository: Path, tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """``start_server(*flags, workers=2, env=None)``: the test repository served over HTTP."""
    launcher = HttpsLauncher(repository, tmp_path)
    yield launcher.start
    launcher.stop_all()


@pytest.fixture
def https_launcher(repository: Path, tmp_path: Path) -> Iterator[HttpsLauncher]:
    launcher = HttpsLauncher(repository, tmp_path)
    yield launcher
    launcher.stop_all()
