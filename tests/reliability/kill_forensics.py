"""Which requests a worker kill failed, and why: each failure tied to the kill and the connection it was on.

A killed worker takes with it every connection it holds: the request being
answered on one, and the requests its clients had sent that it had not read yet
(waiting in its event loop for a thread). Only those may fail. To tell them from
failures a server could avoid, the harness stops the victim (``SIGSTOP``), reads
from ``/proc`` which client connections it holds (the client's port of each)
and how many bytes of each it had not read (:func:`held_connections`), then kills
it (:func:`kill`); every
client request notes the port of the connection it went out on and whether that
connection was new (traffic_clients.py). :func:`attribute` then puts each failed
request in one of these:

- ``in flight on the killed worker``: started before the victim was gone, on a
  connection it held (``unread`` when its bytes were still in the victim's socket
  just before the kill: it had not begun to read that request);
- ``sent after the kill``: on a connection the victim held, but started after it
  was gone (a kept-alive connection reused after its server closed it);
- ``elsewhere``: on a connection the victim did not hold (another worker's, or a
  new one), which a kill should never fail.

The kind of failure is what the client saw (traffic_clients.py): ``refused``
(the connect itself), ``reset`` or ``closed`` before any answer, ``cut`` (the
answer had begun), ``timeout``.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

_LISTEN = "0A"
#: How long :func:`kill` waits for the replacement of the worker it killed.
REPLACEMENT_WAIT_S = 0.8


def held_connections(pid: int, server_port: int) -> dict[int, int]:
    """Client port -> bytes unread, of each connection to ``server_port`` that ``pid`` holds."""
    inodes: set[str] = set()
    with suppress(FileNotFoundError, ProcessLookupError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with suppress(FileNotFoundError, ProcessLookupError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    held: dict[int, int] = {}
    for table in ("tcp", "tcp6"):
        with suppress(FileNotFoundError, ProcessLookupError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                local, remote, state, queues, inode = fields[1], fields[2], fields[3], fields[4], fields[9]
                if inode in inodes and state != _LISTEN and int(local.rsplit(":", 1)[1], 16) == server_port:
                    held[int(remote.rsplit(":", 1)[1], 16)] = int(queues.split(":")[1], 16)
    return held


@dataclass(frozen=True)
class Kill:
    #: When the victim was stopped (then killed), and when it was gone (every thread a zombie: sockets shut).
    at: float
    gone: float
    pid: int
    #: Client port -> bytes the victim had not read, just before it was killed.
    held: dict[int, int]
    #: Seconds from the kill until the master had started its replacement (None: not within the wait).
    replaced_s: float | None = None


def kill(pid: int, server_port: int, workers: Callable[[], list[int]]) -> Kill:
    """``SIGKILL`` to ``pid``, noting what it held, when it was gone and when it was replaced.

    The victim is stopped (``SIGSTOP``) first, so that what it holds is read while
    it can accept no other connection and read no other byte.
    """
    before = set(workers())
    at = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    while time.monotonic() < at + 5 and _threads_in(pid) - {"T", "t", "Z", "X"}:
        time.sleep(0.0005)
    held = held_connections(pid, server_port)
    os.kill(pid, signal.SIGKILL)
    while time.monotonic() < at + 5 and _alive(pid):
        time.sleep(0.0005)
    gone = time.monotonic()
    replaced_s = None
    while time.monotonic() < at + REPLACEMENT_WAIT_S:
        if set(workers()) - before:
            replaced_s = time.monotonic() - at
            break
        time.sleep(0.002)
    return Kill(at, gone, pid, held, replaced_s)


def _alive(pid: int) -> bool:
    """Whether any thread of ``pid`` is still there: its files (sockets) close with the last one."""
    return bool(_threads_in(pid) - {"Z", "X"})


def _threads_in(pid: int) -> set[str]:
    """The states (``R``, ``S``, ``T``, ``Z``...) of the threads of ``pid``."""
    states: set[str] = set()
    for task in _listing(Path(f"/proc/{pid}/task")):
        with suppress(FileNotFoundError, ProcessLookupError):
            states.add((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
    return states


def _listing(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return []


@dataclass(frozen=True)
class Sent:
    """What :func:`attribute` needs of one request."""

    started: float
    ended: float
    outcome: str
    port: int | None
    new_connection: bool


@dataclass
class Attribution:
    kills: int = 0
    #: Seconds from each kill to its replacement's start.
    replaced_s: list[float] = field(default_factory=list)
    #: How many client connections each victim held: a kill fails at most one request on each.
    connections: list[int] = field(default_factory=list)
    #: Requests on the victim's connections, started before it was gone and not ended before the kill.
    in_flight: int = 0
    failed: Counter[str] = field(default_factory=Counter)

    @property
    def stray(self) -> int:
        """Failures a kill should not cause: not in flight on the killed worker."""
        return sum(n for tag, n in self.failed.items() if not tag.startswith("in flight"))

    def summary(self) -> str:
        held = sum(self.failed.values())
        parts = ", ".join(f"{n} {tag}" for tag, n in self.failed.most_common())
        replaced = sorted(self.replaced_s)
        respawn = f"replaced within {replaced[len(replaced) // 2] * 1000:.0f} ms (median)" if replaced else ""
        connections = sorted(self.connections)
        holding = (
            f" holding {connections[len(connections) // 2]} client connections (median)"
            if connections
            else ""
        )
        return (
            f"{self.kills} workers killed{holding}, {respawn}, {self.in_flight} requests in flight on them; "
            f"{held} failed{': ' + parts if parts else ''}"
        )


def attribute(sent: Sequence[Sent], kills: Sequence[Kill]) -> Attribution:
    """Each failed request tagged with the kill before it, its kind and where it was (module docstring)."""
    result = Attribution(
        len(kills), [k.replaced_s for k in kills if k.replaced_s is not None], [len(k.held) for k in kills]
    )
    for kill in kills:
        result.in_flight += sum(
            1 for s in sent if s.started <= kill.gone and s.ended >= kill.at and s.port in kill.held
        )
    for request in sent:
        if request.outcome == "200":
            continue
        kill = max((k for k in kills if k.at <= request.ended), key=lambda k: k.at, default=None)
        # A request started between SIGKILL and the victim's death may still have reached it.
        connection = "new connection" if request.new_connection else "reused connection"
        if kill is None or request.port not in kill.held:
            where = "elsewhere"
        elif request.started <= kill.gone:
            unread = kill.held[request.port] > 0
            where = "in flight on the killed worker" + (", unread" if unread else "")
        else:
            where = "sent after the kill"
        result.failed[f"{where} ({request.outcome}, {connection})"] += 1
    return result
