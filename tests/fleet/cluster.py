"""A fleet of ``flaskserve serve`` replicas on hosts of their own, Redis on another, nginx in front.

What the replicas share, as the scaling guide says they must: the model
repository, the key file, the config file and Redis (rate-limit counters and the
shared cache tier). What each keeps to itself: its run directory (``TMPDIR``).

nginx runs in the test's own namespace on a loopback port; it balances over the
replicas' addresses with keep-alive connections, and passes a request that met
an error or a timeout to the next replica (``proxy_next_upstream``, including
POSTs: a prediction changes nothing, so sending it twice is harmless).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from network import Host, Network

from flaskserve.security.keys import KeyStore
from live_server import descendants, kill_all, wait_until_gone
from nginx import Nginx
from redis_server import RedisServer

REPLICA_PORT = 8080
REDIS_PORT = 6379
STARTUP_TIMEOUT_S = 60.0
#: What nginx waits for a replica before it passes the request on: short, as a cut link never answers.
CONNECT_TIMEOUT_S = 1
READ_TIMEOUT_S = 3
#: The model whose rate limit is counted for the whole fleet.
LIMITED_MODEL = "iris"
#: Seconds each load of the fleet test runs; ``make fleet`` sets more.
LOAD_SECONDS = float(os.environ.get("FLEET_SECONDS", "3"))


def create_key(keys_file: Path, name: str, *scopes: str) -> str:
    """A new key in ``keys_file``, as ``flaskserve keys create`` makes one; returns the key."""
    store = KeyStore.load(keys_file)
    key = store.create(name, scopes)
    store.save()
    return key


@dataclass
class Replica:
    """One ``flaskserve serve`` on ``host``, its own run directory and log."""

    host: Host
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    known: dict[int, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.host.address}:{REPLICA_PORT}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.host.command(*self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise AssertionError(f"replica {self.host.name} exited:\n{self.logs()}")
            try:
                if requests.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    self.known.update(descendants(self.process.pid))
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"replica {self.host.name} was not ready in {timeout:.0f} s:\n{self.logs()}")

    def kill(self) -> None:
        """SIGKILL to the whole replica, master and workers at once, as a crash or an OOM kill would."""
        if self.process is None:
            return
        self.known.update(descendants(self.process.pid))
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None
        kill_all(wait_until_gone(self.known, 5.0))
        self.known.clear()

    def stop(self) -> None:
        if self.process is None:
            return
        self.known.update(descendants(self.process.pid))
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None
        kill_all(wait_until_gone(self.known, 5.0))
        self.known.clear()

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


class Fleet:
    """Replicas ``a``, ``b``, ``c``…, Redis on host ``r``, nginx in front; :meth:`close` stops them all."""

    def __init__(
        self,
        network: Network,
        workdir: Path,
        repository: Path,
        *,
        replicas: int = 3,
        rate_limit: str = "30/minute",
        extra_flags: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.network = network
        self.workdir = workdir
        self.repository = repository
        self.keys_file = workdir / "keys.json"
        self.key = create_key(self.keys_file, "load", "predict", "read", "metrics")
        redis_host = network.add_host("r")
        self.redis = RedisServer(workdir, redis_host.address, REDIS_PORT, prefix=redis_host.command())
        store = f"redis://{redis_host.address}:{REDIS_PORT}/0"
        self.config = workdir / "flaskserve.toml"
        self.config.write_text(
            textwrap.dedent(
                f"""\
                rate_limit_storage = "{store}"
                cache_storage = "{store}"
                cache_size = 10000
                # Five times the default: on a busy two-core machine, scheduling alone can take 5 ms.
                cache_storage_timeout_ms = 25
                trusted_proxies = 1

                [models.{LIMITED_MODEL}]
                rate_limit = "{rate_limit}"
                """
            )
        )
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("FLASKSERVE_") and key != "PROMETHEUS_MULTIPROC_DIR"
        }
        environment.update(env or {})
        self.replicas: list[Replica] = []
        for number in range(replicas):
            host = network.add_host("abcdefgh"[number])
            run_dir = workdir / f"run-{host.name}"
            run_dir.mkdir()
            argv = [sys.executable, "-m", "flaskserve", "serve", str(repository)]
            argv += ["--config", str(self.config), "--keys-file", str(self.keys_file)]
            argv += ["--host", host.address, "--port", str(REPLICA_PORT), "--workers", "1"]
            argv += ["--allow-pickle", "--default-model", "linear", "--log-format", "json", *extra_flags]
            self.replicas.append(
                Replica(
                    host, argv, {**environment, "TMPDIR": str(run_dir)}, workdir / f"replica-{host.name}.log"
                )
            )
        self.nginx = Nginx(
            workdir,
            [f"{r.host.address}:{REPLICA_PORT}" for r in self.replicas],
            connect_timeout_s=CONNECT_TIMEOUT_S,
            read_timeout_s=READ_TIMEOUT_S,
        )

    def start(self) -> None:
        self.redis.start()
        for replica in self.replicas:
            replica.start()
        for replica in self.replicas:
            replica.wait_ready()
        self.nginx.start()

    def close(self) -> None:
        self.nginx.stop()
        # Killed, not stopped gracefully: the test is over, and a graceful stop of three replicas
        # waits for nginx's kept-alive connections to close.
        for replica in self.replicas:
            replica.kill()
        self.redis.stop()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def post(self, base: str, path: str, body: Any, *, key: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return requests.post(base + path, json=body, headers=headers, timeout=10)
