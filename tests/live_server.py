"""A real ``flaskserve serve`` in a subprocess, for tests that need gunicorn's workers.

The ``start_server`` and ``server`` fixtures in ``tests/e2e/conftest.py`` wrap
:class:`ServerLauncher`; import this module (``from live_server import ...``)
for the types. The server's ``TMPDIR`` is a folder of the test's own, so a test
can see the files the server keeps there (the metrics directory).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class RunningServer:
    """A started server: its URL, its process, and what it has logged so far."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    tmp_dir: Path
    session: requests.Session = field(default_factory=requests.Session)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url + path, timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.url + path, timeout=10, **kwargs)

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """Every line of output parsed as JSON; a line that is not JSON fails the test."""
        return [orjson.loads(line) for line in self.logs().splitlines() if line.strip()]

    def stop(self) -> int:
        """SIGTERM, as an orchestrator sends it (then SIGKILL if it lingers); returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.session.close()
        return self.process.returncode


class ServerLauncher:
    """Starts servers for one test, in folders under ``workdir``, and stops them all at the end."""

    def __init__(self, repository: Path, workdir: Path) -> None:
        self.repository = repository
        self.workdir = workdir
        self.started: list[RunningServer] = []

    def start(
        self,
        *flags: str,
        workers: int = 2,
        model_path: Path | None = None,
        env: dict[str, str] | None = None,
        https: bool = False,
        verify: str | bool = True,
        client_cert: tuple[str, str] | None = None,
    ) -> RunningServer:
        """Serve ``model_path`` (default: the test repository) and wait until it is ready.

        The defaults every server gets (``--allow-pickle``, ``--default-model linear``,
        ``--log-format json``) come before ``flags``, so a flag given here wins. With
        ``https``, the server is reached at ``https://localhost`` and its session
        verifies with ``verify`` and presents ``client_cert``; the server runs in the
        work folder, where ``--tls-self-signed`` writes its certificate.
        """
        number = len(self.started)
        port = free_port()
        tmp_dir = self.workdir / f"server-{number}-tmp"
        tmp_dir.mkdir(parents=True)
        log_path = self.workdir / f"server-{number}.log"
        argv = [
            sys.executable,
            "-m",
            "flaskserve",
            "serve",
            str(model_path or self.repository),
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--allow-pickle",
            "--default-model",
            "linear",
            "--log-format",
            "json",
            *flags,
        ]
        # The test run's own settings must not leak into the server.
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("FLASKSERVE_") and key != "PROMETHEUS_MULTIPROC_DIR"
        }
        environment.update({"TMPDIR": str(tmp_dir), **(env or {})})
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                argv, stdout=log_file, stderr=subprocess.STDOUT, env=environment, cwd=self.workdir
            )
        url = f"https://localhost:{port}" if https else f"http://127.0.0.1:{port}"
        server = RunningServer(url, process, log_path, tmp_dir)
        if https:
            # Otherwise REQUESTS_CA_BUNDLE in the environment would replace ``verify``.
            server.session.trust_env = False
            server.session.verify = verify
            server.session.cert = client_cert
        self.started.append(server)
        _wait_until_ready(server)
        return server

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


def _wait_until_ready(server: RunningServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"the server exited with {server.process.returncode}:\n{server.logs()}")
        try:
            if server.session.get(server.url + "/v2/health/ready", timeout=1).status_code == 200:
                return
        # OSError: a self-signed certificate to verify with is not written yet.
        except (requests.ConnectionError, OSError):
            pass
        time.sleep(0.05)
    server.stop()
    pytest.fail(f"the server was not ready within {STARTUP_TIMEOUT_S:.0f} s:\n{server.logs()}")


@contextmanager
def served_in_thread(app: Any) -> Iterator[str]:
    """Serve a WSGI app on a free loopback port with Werkzeug's threaded server; yields ``host:port``.

    For clients that need a real socket but not gunicorn's workers: it starts in
    milliseconds, where a ``flaskserve serve`` subprocess takes seconds.
    """
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
