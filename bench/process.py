"""Server processes: start each in its own process group, wait until it answers, stop it for good.

Every server is started with ``start_new_session=True`` so that it and everything it forks
(gunicorn workers, MLServer's inference pool) share one process group.  Stopping signals the
whole group, which is the only reliable way to leave no worker behind when a master dies
first, and the same group is what memory is summed over.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
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


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    timeout: float = 5.0,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """One HTTP request with the standard library; a refused connection raises ``OSError``.

    A body is sent as JSON unless ``headers`` give another ``Content-Type``.
    """
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
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


TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _process_group(pid: int) -> int | None:
    """The group of a live process, or None for a gone one or a zombie (it holds no memory)."""
    fields = _stat_fields(pid)
    # After the command name: state, ppid, pgrp.
    if fields is None or fields[0] == "Z":
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
    def running(self) -> bool:
        return self._process is not None

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

    def wait_ready(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        timeout: float = 120,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Poll ``url`` until it answers 200, failing early if the process dies."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                reply = http(method, url, body, timeout=2.0, headers=headers)
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
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            process.poll()
            if process.returncode is not None and not group_members(pgid):
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def running(processes: list[ServerProcess]) -> Iterator[None]:
    """Stops every process in ``processes`` on the way out, whatever happened inside.

    The list is read on the way out, not on the way in, so a caller can append each process as
    it starts it and an interruption halfway through a start-up still stops the ones started.
    """
    try:
        yield
    finally:
        for process in reversed(processes):
            process.stop()


def groups_cpu_seconds(pgids: Iterable[int]) -> float:
    """CPU time (user + system) used so far by the live processes of the groups ``pgids``."""
    wanted = set(pgids)
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        # After the command name: state, ppid, pgrp, ..., utime at 11 and stime at 12.
        if fields is not None and fields[0] != "Z" and int(fields[2]) in wanted:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / TICKS_PER_SECOND


def machine_busy_seconds() -> float:
    """CPU time all cores have spent not idle since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / TICKS_PER_SECOND


def wait_until_settled(
    pgids: Iterable[int],
    *,
    max_other: float = 0.1,
    threshold: float = 0.05,
    window: float = 0.25,
    timeout: float = 30.0,
) -> float:
    """Wait until the servers ``pgids`` are idle and nothing else keeps the CPU busy.

    When wrk stops, a server may still be working through requests it had queued (a slow one
    at concurrency 64 can have a second of backlog), and that work would be charged to the
    next server measured.  Unrelated processes (a test suite, a build) skew a run the same
    way.  Waits until, over two windows in a row, the servers use less than ``threshold``
    cores and everything else less than ``max_other`` cores; gives up after ``timeout``
    seconds and returns the seconds waited.
    """
    groups = list(pgids)
    start = time.monotonic()
    calm = 0
    ours, busy = groups_cpu_seconds(groups), machine_busy_seconds()
    while calm < 2 and time.monotonic() - start < timeout:
        time.sleep(window)
        now_ours, now_busy = groups_cpu_seconds(groups), machine_busy_seconds()
        servers = (now_ours - ours) / window
        other = (now_busy - busy) / window - servers
        calm = calm + 1 if servers < threshold and other < max_other else 0
        ours, busy = now_ours, now_busy
    return time.monotonic() - start
