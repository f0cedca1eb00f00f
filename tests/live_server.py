"""A real ``flaskserve serve`` in a subprocess, for tests that need gunicorn's workers.

The ``start_server`` and ``server`` fixtures in ``tests/e2e/conftest.py`` wrap
:class:`ServerLauncher`; import this module (``from live_server import ...``)
for the types. The server's ``TMPDIR`` is a folder of the test's own, so a test
can see the files the server keeps there (the metrics directory).

Stopping a server proves its workers are gone too: a worker that outlives its
master fails the test. The process helpers (:func:`descendants`,
:func:`wait_until_gone`) read Linux's ``/proc``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
#: How long a stopped master's workers may take to follow it.
WORKERS_FOLLOW_S = 5.0
_PROC = Path("/proc")
#: prctl(2) option: orphaned descendants are given to this process instead of init.
_PR_SET_CHILD_SUBREAPER = 36


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
    #: Every worker process seen so far, checked to be gone when the server stops.
    known_workers: dict[int, str] = field(default_factory=dict)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url + path, timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.url + path, timeout=10, **kwargs)

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """Every line of output parsed as JSON; a line that is not JSON fails the test."""
        return [orjson.loads(line) for line in self.logs().splitlines() if line.strip()]

    def log_records_once(
        self, written: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """:meth:`log_records` once ``written(records)`` holds (or at ``timeout``, for the test to fail on).

        Each process writes its lines from a thread of its own, a moment after it logged them:
        a line about a request may come after its answer.
        """
        deadline = time.monotonic() + timeout
        while not written(records := self.log_records()) and time.monotonic() < deadline:
            time.sleep(0.02)
        return records

    def worker_pids(self, count: int, timeout: float = STARTUP_TIMEOUT_S) -> list[int]:
        """The master's living child processes, once there are ``count`` of them."""
        deadline = time.monotonic() + timeout
        while len(workers := children(self.process.pid)) < count:
            if time.monotonic() > deadline or self.process.poll() is not None:
                pytest.fail(f"the server has {len(workers)} workers, not {count}:\n{self.logs()}")
            time.sleep(0.05)
        self.known_workers.update({pid: command_line(pid) for pid in workers})
        return workers

    def stop(self) -> int:
        """SIGTERM, as an orchestrator sends it (then SIGKILL if it lingers); returns the exit code.

        Fails the test if a worker outlives the master (it is killed first).
        """
        self.known_workers.update(descendants(self.process.pid))
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.session.close()
        survivors = wait_until_gone(self.known_workers, WORKERS_FOLLOW_S)
        if survivors:
            kill_all(survivors)
            pytest.fail(f"worker processes outlived their master: {survivors}\n{self.logs()}")
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
                server.known_workers.update(descendants(server.process.pid))
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


def _parent_and_state(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) from ``/proc/PID/stat``, or None once the process is gone."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: the fields after it follow the last ')'.
    state, parent = stat.rpartition(")")[2].split()[:2]
    return int(parent), state


def is_running(pid: int) -> bool:
    """Whether ``pid`` exists and has not exited (a zombie has exited; only its parent has not reaped it)."""
    found = _parent_and_state(pid)
    return found is not None and found[1] not in ("Z", "X")


def command_line(pid: int) -> str:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def children(pid: int) -> list[int]:
    """The running processes whose parent is ``pid``."""
    found = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            parent_and_state = _parent_and_state(int(entry.name))
            if parent_and_state is not None and parent_and_state[0] == pid and is_running(int(entry.name)):
                found.append(int(entry.name))
    return sorted(found)


def descendants(pid: int) -> dict[int, str]:
    """The running processes below ``pid`` (children, theirs, ...), with their command lines."""
    parents: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            parent_and_state = _parent_and_state(int(entry.name))
            if parent_and_state is not None and parent_and_state[1] not in ("Z", "X"):
                parents.setdefault(parent_and_state[0], []).append(int(entry.name))
    found: dict[int, str] = {}
    pending = list(parents.get(pid, []))
    while pending:
        child = pending.pop()
        found[child] = command_line(child)
        pending.extend(parents.get(child, []))
    return found


def wait_until_gone(pids: dict[int, str] | list[int], timeout: float) -> dict[int, str]:
    """Wait up to ``timeout`` for every process in ``pids`` to exit; returns those still running."""
    names = pids if isinstance(pids, dict) else {pid: command_line(pid) for pid in pids}
    deadline = time.monotonic() + timeout
    while True:
        # The same command line too: a pid may be reused once its process is gone.
        running = {pid: name for pid, name in names.items() if is_running(pid) and command_line(pid) == name}
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.05)


def kill_all(pids: dict[int, str]) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def adopt_orphans() -> bool:
    """Make this process the parent of its descendants' orphans (Linux), so that they stay findable.

    Without it, a worker whose master died is given to init and escapes :func:`descendants`.
    Returns whether it took effect.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
