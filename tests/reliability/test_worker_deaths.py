"""A worker that cannot start stops the server; a worker killed while serving is always replaced.

The two deaths look alike to a master (a child that exited), and must not be
treated alike: workers that die before they are ready would die again, so the
server stops, saying why, with a non-zero exit status; a worker killed from
outside after it served (the OOM killer, an operator) is a reason to start
another, however often it happens.

A start that fails for real: a gRPC port held by another socket, which every
worker fails to bind after the fork.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from live_server import RunningServer, children

pytestmark = pytest.mark.e2e

#: How long a server whose workers cannot start may take to give up.
GIVE_UP_S = 60.0
KILLS = 10


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port held by a listening socket without ``SO_REUSEPORT``: no one else may bind it."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize("server_name", ["gunicorn", "granian"])
def test_workers_that_cannot_start_stop_the_server_with_the_reason(
    server_name: str, taken_port: int, repository: Path, tmp_path: Path
) -> None:
    serve = [sys.executable, "-m", "flaskserve", "serve", str(repository), "--server", server_name]
    options = ["--port", "0", "--workers", "2", "--allow-pickle", "--grpc-port", str(taken_port)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FLASKSERVE_")}

    ended = subprocess.run(
        [*serve, *options], capture_output=True, text=True, timeout=GIVE_UP_S, env=environment, cwd=tmp_path
    )

    output = ended.stdout + ended.stderr
    assert ended.returncode != 0, output
    assert f"cannot serve gRPC on 127.0.0.1:{taken_port}" in output
    if server_name == "granian":
        assert "workers cannot start" in output


def _ready_workers(server: RunningServer) -> set[int]:
    return {
        record["worker_pid"] for record in server.log_records() if record.get("message") == "worker ready"
    }


def test_a_granian_worker_killed_ten_times_in_ten_seconds_after_it_served_is_replaced_each_time(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server("--server", "granian", workers=2)
    server.worker_pids(2)
    killed: list[int] = []
    started = time.monotonic()
    while len(killed) < KILLS and time.monotonic() < started + 2 * KILLS and server.process.poll() is None:
        # The youngest worker (the replacement of the one killed before: the same slot every
        # time), once it said it is ready; at most one a second.
        youngest = max(children(server.process.pid), default=None)
        if youngest is None or youngest in killed or youngest not in _ready_workers(server):
            time.sleep(0.02)
            continue
        os.kill(youngest, signal.SIGKILL)
        killed.append(youngest)
        time.sleep(max(0.0, started + len(killed) - time.monotonic()))

    assert server.process.poll() is None, server.logs()[-3000:]
    assert len(killed) == KILLS
    server.worker_pids(2)
    assert server.get("/v2/health/ready").status_code == 200
    replaced = [
        r for r in server.log_records() if r.get("message") == "worker died while serving; replacing it"
    ]
    assert {r["worker_pid"] for r in replaced} == set(killed)
