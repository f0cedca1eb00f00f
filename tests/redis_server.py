"""A ``redis-server`` of a test's own (never the machine's), without persistence, that can be killed.

``prefix`` runs it under another command, e.g. ``["ip", "netns", "exec", "host-r"]``
to put it on a host of its own in the fleet test.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import redis

NEEDS_REDIS = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server on PATH")
START_TIMEOUT_S = 10.0


class RedisServer:
    """One ``redis-server`` on ``host:port``; :meth:`start` waits until it answers PING."""

    def __init__(self, workdir: Path, host: str, port: int, prefix: Sequence[str] = ()) -> None:
        self.workdir = workdir
        self.host = host
        self.port = port
        self.prefix = list(prefix)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> None:
        argv = [*self.prefix, "redis-server", "--port", str(self.port), "--bind", self.host]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(self.workdir)]
        argv += ["--protected-mode", "no"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        with self.client() as client:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        self.stop()
                        raise
                    time.sleep(0.02)

    def stop(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=10)
        self.process = None
