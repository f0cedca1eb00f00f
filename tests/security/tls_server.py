"""A real ``flaskserve serve`` over HTTPS, for the TLS tests (plain HTTP: ``tests/live_server.py``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from live_server import STARTUP_TIMEOUT_S, RunningServer, ServerLauncher, free_port


class HttpsLauncher(ServerLauncher):
    """:class:`ServerLauncher` for servers that speak HTTPS: the URL, the client and the probe use TLS."""

    def start_https(
        self,
        *flags: str,
        verify: str | bool,
        client_cert: tuple[str, str] | None = None,
        workers: int = 1,
    ) -> RunningServer:
        number = len(self.started)
        port = free_port()
        tmp_dir = self.workdir / f"https-{number}-tmp"
        tmp_dir.mkdir(parents=True)
        log_path = self.workdir / f"https-{number}.log"
        argv = [
            sys.executable,
            "-m",
            "flaskserve",
            "serve",
            str(self.repository),
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
        environment = {key: value for key, value in os.environ.items() if not key.startswith("FLASKSERVE_")}
        environment["TMPDIR"] = str(tmp_dir)
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                argv, stdout=log_file, stderr=subprocess.STDOUT, env=environment, cwd=self.workdir
            )
        server = RunningServer(f"https://localhost:{port}", process, log_path, tmp_dir)
        # Otherwise REQUESTS_CA_BUNDLE in the environment would replace ``verify``.
        server.session.trust_env = False
        server.session.verify = verify
        server.session.cert = client_cert
        self.started.append(server)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}:\n{server.logs()}")
            try:
                if server.get("/livez").status_code == 200:
                    return server
            # OSError: a self-signed certificate to verify with is not written yet.
            except (requests.ConnectionError, OSError):
                pass
            time.sleep(0.05)
        server.stop()
        pytest.fail(f"the server was not ready within {STARTUP_TIMEOUT_S:.0f} s:\n{server.logs()}")

    def stop_all(self) -> None:
        """Stop every server at once: these tests check requests, not graceful shutdown."""
        for server in self.started:
            server.session.close()
            if server.process.poll() is None:
                server.process.send_signal(signal.SIGQUIT)  # gunicorn's quick shutdown
        for server in self.started:
            server.stop()
