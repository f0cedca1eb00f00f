"""Spreading kept-alive connections over the workers again when a worker joins.

Clients keep their connections: a closed-loop client, or a proxy's pool of
upstream connections, sends every request on the connection it already has. So
when a worker dies (killed, out of memory), its clients reconnect within
milliseconds, before its replacement serves, and all land on the workers left;
the replacement then sits idle while they carry the whole load, and the next
death costs every request they hold. (Measured: after a kill, the survivor held
all eight of the availability harness's connections, and the next kill failed all
eight requests in flight.)

So each worker, once it serves, says so (:func:`announce_arrival`) in a counter
every worker shares (an anonymous shared mapping the master creates at import,
before it forks). Each other worker sees the count change at its next request
and, while it holds more than its share of the port's connections (all of them
over the number of workers), answers with ``Connection: close``
(:func:`closing_connections`). Each such client learns from an answer, never
from a closed socket, to open a new connection, which any worker may accept.
What each worker holds is read from ``/proc`` (Linux) every
:data:`LOOK_EVERY_S` while this lasts, so a worker that gets a closed client
back goes on closing, and one that is down to its share stops: the connections
spread without swinging over to the newcomer, which closes nothing. Nothing is
refused and no request in progress is touched; a client pays one new
connection. It ends after :data:`REBALANCE_S` in any case.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LOOK_EVERY_S", "REBALANCE_S", "announce_arrival", "closing_connections", "port_connections"]

#: The longest the other workers go on closing connections after a worker joins.
REBALANCE_S = 1.0
#: How often, while closing, a worker reads again how many connections it and the others hold.
LOOK_EVERY_S = 0.05

_COUNT = struct.Struct("Q")
#: Shared by every process forked after this module was imported: the master imports it before forking.
_arrivals = mmap.mmap(-1, _COUNT.size)
_lock = threading.Lock()


@dataclass
class _Place:
    """What this worker serves and what it last read: the counter, the time left, its excess."""

    port: int = 0
    workers: int = 1
    pid: int = 0
    count: int = 0
    until: float = 0.0
    next_look: float = 0.0
    excess: int = 0


_here = _Place()


def _read() -> int:
    count: int = _COUNT.unpack_from(_arrivals)[0]
    return count


def announce_arrival(port: int, workers: int) -> None:
    """Called in a worker once it serves on ``port`` with ``workers`` workers: the others spread again."""
    with _lock:
        count = _read() + 1
        _COUNT.pack_into(_arrivals, 0, count)
        # Its own arrival is no reason for this worker to close anything.
        _here.port, _here.workers, _here.pid, _here.count, _here.until = (
            port,
            workers,
            os.getpid(),
            count,
            0.0,
        )


def closing_connections() -> bool:
    """Whether this answer should close its connection, as a sibling joined just now.

    Cheap enough for every request: one read of the shared counter when nothing is going on.
    Only a worker that announced itself closes anything; threads racing for the last
    connection to close may close one more or one fewer.
    """
    count = _read()
    if count != _here.count:
        _here.count = count
        if _here.pid != os.getpid():
            return False  # forked since the count was read, and not serving yet
        _here.until = time.monotonic() + REBALANCE_S
        _here.next_look = 0.0
    if not _here.until:
        return False
    now = time.monotonic()
    if now >= _here.until:
        _here.until = 0.0
        return False
    if now >= _here.next_look:
        _here.next_look = now + LOOK_EVERY_S
        mine, everyone = port_connections(_here.port)
        _here.excess = mine - math.ceil(everyone / max(1, _here.workers))
    if _here.excess <= 0:
        return False
    _here.excess -= 1
    return True


_ESTABLISHED = "01"


def port_connections(port: int) -> tuple[int, int]:
    """Established connections to local ``port``: held by this process, and by every process (Linux).

    Read from ``/proc``: the kernel's TCP tables of this network namespace, matched with this
    process's socket descriptors. ``(0, 0)`` where ``/proc`` is not there. One pass over the
    tables, so it is for moments like these, not for every request.
    """
    inodes: set[str] = set()
    with suppress(OSError):
        for fd in Path("/proc/self/fd").iterdir():
            with suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    wanted = f"{port:04X}"
    mine = everyone = 0
    for table in ("tcp", "tcp6"):
        with suppress(OSError):
            for line in Path(f"/proc/self/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == _ESTABLISHED and fields[1].endswith(":" + wanted):
                    everyone += 1
                    mine += fields[9] in inodes
    return mine, everyone
