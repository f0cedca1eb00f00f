"""The load generator: wrk, driven from its own process with ``wrk/post.lua``.

wrk runs closed-loop: each connection sends its next request as soon as the previous answer
arrives, so ``--connections`` is the concurrency.  It runs with one thread, because on a small
machine every core wrk takes is a core the server under test loses; one thread keeps well
ahead of any Python server here.  The Lua script prints one ``BENCH_RESULT`` JSON line, which
is parsed instead of wrk's human-oriented summary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "wrk" / "post.lua"
MARKER = "BENCH_RESULT "
INSTALL_HINT = "install it with `apt-get install -y wrk` (Debian, Ubuntu) or `brew install wrk` (macOS)"


class LoadError(RuntimeError):
    """wrk is missing, failed, or printed no result line."""


@dataclass(frozen=True)
class LoadRun:
    """What one wrk run measured."""

    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    socket_errors: int
    status_errors: int

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def find_wrk() -> str:
    """The path of the wrk binary, or a :class:`LoadError` that says how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise LoadError(f"wrk is not on PATH; {INSTALL_HINT}")
    return path


def wrk_version(wrk: str) -> str:
    """wrk's version line (wrk prints it, with its usage, on -v)."""
    result = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    first = (result.stdout + result.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0] if first else "unknown"


def command(wrk: str, url: str, connections: int, seconds: float, timeout_s: float = 10.0) -> list[str]:
    """The wrk command line for one run."""
    return [
        wrk,
        "--threads",
        "1",
        "--connections",
        str(connections),
        "--duration",
        f"{seconds:g}s",
        "--timeout",
        f"{timeout_s:g}s",
        "--script",
        str(SCRIPT),
        url,
    ]


def run(
    wrk: str,
    url: str,
    body_file: Path,
    connections: int,
    seconds: float,
    headers: Mapping[str, str] | None = None,
) -> LoadRun:
    """Drive ``url`` with ``connections`` concurrent connections for ``seconds``, POSTing ``body_file``.

    ``headers`` are sent with every request besides ``Content-Type: application/json``, which
    they may replace.
    """
    argv = command(wrk, url, connections, seconds)
    lines = "".join(f"{name}: {value}\n" for name, value in (headers or {}).items())
    result = subprocess.run(
        argv,
        env={**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_HEADERS": lines},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    for line in result.stdout.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            break
    else:
        raise LoadError(f"wrk printed no result (exit {result.returncode}): {result.stderr.strip()[:500]}")
    return LoadRun(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        socket_errors=int(data["errors_connect"] + data["errors_read"] + data["errors_write"])
        + int(data["errors_timeout"]),
        status_errors=int(data["errors_status"]),
    )
