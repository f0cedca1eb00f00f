"""Server processes: start each in its own process group, wait until it answers, stop it for good.

Every server is started with ``start_new_session=True`` so that it and everything it forks
(gunicorn workers, MLServer's inference pool) share one process group.  Stopping signals the
whole group, which is the only reliable way to leave no worker behind when a master dies
first, and the same group is what memory is summed over.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Reply:
    """An HTTP answer, kept small: status and body."""

    status: int
    body: bytes


def http(method: str, url: str, body: bytes | None = None, timeout: float = 5.0) -> Reply:
    """One HTTP request with the standard library; a refused connection raises ``OSError``."""
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.read())


@dataclass(frozen=True)
class Memory:
    """Memory of one process group: proportional and resident set sizes summed, in bytes.

    PSS divides each shared page between the processes that map it, so its sum counts a model
    that workers share after a fork once; the RSS sum counts it once per process.
    """

    pss: int
    rss: int
    processes: int


def _process_group(pid: int) -> int | None:
    """The group of a live process, or None for a gone one or a zombie (it holds no memory)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command name: state, ppid, pgrp.
    if fields[0] == "Z":
        return None
    return int(fields[2])


def _smaps_totals(pid: int) -> tuple[int, int]:
    pss = rss = 0
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
            elif line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
    return pss, rss


def group_members(pgid: int) -> list[int]:
    """Ids of the live processes in the group ``pgid``, read from /proc."""
    return [
        int(entry) for entry in os.listdir("/proc") if entry.isdigit() and _process_group(int(entry)) == pgid
    ]


def group_memory(pgid: int) -> Memory:
    """Summed PSS and RSS of every process in the group ``pgid``."""
    pss = rss = count = 0
    for pid in group_members(pgid):
        try:
            one_pss, one_rss = _smaps_totals(pid)
        except OSError:
            continue
        pss += one_pss
        rss += one_rss
        count += 1
    return Memory(pss=pss, rss=rss, processes=count)


class ServerError(RuntimeError):
    """A server did not start, or died; the message carries the end of its log."""


class ServerProcess:
    """One running server, owned by the benchmark from start to stop.

    Output goes to a log file rather than a pipe, so a chatty server (the development server
    and MLServer in debug mode log every request) can never block on a full pipe.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pgid(self) -> int:
        if self._process is None:
            raise ServerError(f"{self.name} is not running")
        return self._process.pid

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self.argv,
                env={**os.environ, **self.env},
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raise with the log's end if the server's main process has exited."""
        if self._process is not None and self._process.poll() is not None:
            raise ServerError(
                f"{self.name} exited with status {self._process.returncode}; its log ends with:\n"
                f"{self.log_tail()}"
            )

    def wait_ready(self, url: str, method: str = "GET", body: bytes | None = None, timeout: float = 120) -> None:
        """Poll ``url`` until it answers 200, failing early if the process dies."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                reply = http(method, url, body, timeout=2.0)
            except OSError as error:
                last = str(error)
            else:
                if reply.status == 200:
                    return
                last = f"HTTP {reply.status}: {reply.body[:200]!r}"
            time.sleep(0.2)
        raise ServerError(
            f"{self.name} was not ready after {timeout:.0f} s ({last}); its log ends with:\n{self.log_tail()}"
        )

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the whole group, then SIGKILL whatever is left after ``grace`` seconds."""
        process, self._process = self._process, None
        if process is None:
            return
        pgid = process.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            process.poll()
            if process.returncode is not None and not group_members(pgid):
                return
            time.sleep(0.1)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
