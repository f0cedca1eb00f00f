"""The memory phase: what flaskserve and the tutorial app under gunicorn hold, idle, per worker count.

Each server runs alone, serving the large model, with 1 and then with 4 workers; the growth
between the two is what one more worker costs.  Memory is summed over the server's whole process
group (see :func:`process.group_memory`), after a short burst of load that reaches every
worker, so each has touched what serving touches.
"""

from __future__ import annotations

import time
from pathlib import Path

import load
import servers
from process import ServerError, free_port, group_memory, running
from progress import say
from results import MemoryResult
from servers import Capabilities, Layout, Server, Tuning
from target import Target, bring_up

from models import BenchModel

#: The worker counts measured; the report's per-worker growth is taken between the first and last.
WORKER_COUNTS = (1, 4)

# The burst of load before reading memory: enough connections to reach every worker.
BURST_CONNECTIONS = 16
BURST_SECONDS = 2.0
# Time for the server to go idle after the burst, so memory is read at rest.
SETTLE_SECONDS = 1.0


def _servers(
    layout: Layout, model: BenchModel, tuning: Tuning, capabilities: Capabilities, workers: int
) -> list[Server]:
    tutorial = servers.tutorial_gunicorn(
        layout, f"mem-gunicorn-{workers}", model, tuning, free_port(), workers=workers
    )
    if not capabilities.serve:
        return [tutorial]
    flaskserve = servers.flaskserve(
        layout,
        f"mem-flaskserve-{workers}",
        model,
        tuning,
        free_port(),
        flags=capabilities.flags,
        workers=workers,
    )
    return [flaskserve, tutorial]


def _idle_memory(target: Target, wrk: str, logs: Path, workers: int) -> MemoryResult | None:
    """Starts the target alone, loads it briefly, and reads its memory; None if it did not start."""
    process = target.process(logs)
    with running([process]):
        process.start()
        try:
            bring_up(target, process)
        except ServerError as error:
            say(f"  ✗ memory, {target.label}: {error}")
            return None
        body = logs / f"{target.key}.json"
        body.write_bytes(target.body)
        load.run(wrk, target.url, body, BURST_CONNECTIONS, BURST_SECONDS)
        time.sleep(SETTLE_SECONDS)
        memory = group_memory(process.pgid)
    name = "flaskserve" if target.server.name == "flaskserve" else "tutorial app under gunicorn"
    return MemoryResult(name, workers, memory.processes, memory.pss, memory.rss)


def measure_memory(
    layout: Layout, model: BenchModel, tuning: Tuning, capabilities: Capabilities, wrk: str
) -> list[MemoryResult]:
    """Idle memory of flaskserve (when it can run) and of the tutorial under gunicorn.

    Sorted flaskserve first, then by server and worker count, the order of the report's table.
    """
    results = []
    for workers in WORKER_COUNTS:
        for server in _servers(layout, model, tuning, capabilities, workers):
            result = _idle_memory(Target(server, model), wrk, layout.logs, workers)
            if result is None:
                continue
            results.append(result)
            say(
                f"  {result.server}, {workers} workers: "
                f"PSS {result.pss / 2**20:.0f} MiB, RSS {result.rss / 2**20:.0f} MiB"
            )
    return sorted(results, key=lambda result: (result.server != "flaskserve", result.server, result.workers))
