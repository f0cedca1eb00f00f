"""After a worker is killed and replaced, the clients' kept-alive connections spread onto the replacement.

A real two-worker server takes predictions from eight clients, each on one
kept-alive connection that it opens again only when the server closes it or it
breaks. The worker holding the most connections is killed; its clients reconnect
to the survivor at once. Without rebalancing they would stay there for good and
the replacement would serve nothing; with it, the survivor closes about one
answer per connection once the replacement serves, and some connections move.
Which worker holds which connection is read from ``/proc`` (kill_forensics).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from kill_forensics import held_connections

from live_server import RunningServer, children

pytestmark = pytest.mark.e2e

CLIENTS = 8
#: Every loop here is bounded by time: the clients' and the waits'.
MAX_SECONDS = 30.0
BODY = json.dumps({"x": 0.5, "y": 0.5})


class KeptAliveClients:
    """``CLIENTS`` threads, each sending on its own connection until stopped; outcomes counted."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.outcomes: Counter[str] = Counter()
        self.closed_by_server = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]

    def __enter__(self) -> KeptAliveClients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _run(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        connection: http.client.HTTPConnection | None = None
        while not self._stop.is_set() and time.monotonic() < deadline:
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                connection.request("POST", "/predict", BODY, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                outcome = str(response.status)
                if response.will_close:
                    self.closed_by_server += 1
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as error:
                outcome = type(error).__name__
                connection.close()
                connection = None
            with self._lock:
                self.outcomes[outcome] += 1
        if connection is not None:
            connection.close()


def _held(server: RunningServer, port: int) -> dict[int, int]:
    return {pid: len(held_connections(pid, port)) for pid in children(server.process.pid)}


def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("server_name", ["gunicorn", "granian"])
def test_connections_spread_onto_the_replacement_of_a_killed_worker(
    start_server: Callable[..., RunningServer], server_name: str
) -> None:
    server = start_server("--server", server_name, workers=2)
    first = set(server.worker_pids(2))
    port = int(server.url.rsplit(":", 1)[1])
    with KeptAliveClients(port) as clients:
        assert _wait_for(lambda: clients.outcomes["200"] >= 50 * CLIENTS, 20), dict(clients.outcomes)
        held = _held(server, port)
        victim = max(held, key=held.__getitem__)
        os.kill(victim, signal.SIGKILL)
        survivor = (first - {victim}).pop()

        def replacement_holds_some() -> bool:
            now = _held(server, port)
            return any(count > 0 for pid, count in now.items() if pid not in first)

        spread = _wait_for(replacement_holds_some, 10)
        after = _held(server, port)
    print(f"\n{server_name}: held before the kill {held}, after {after}; {dict(clients.outcomes)}")
    assert spread, f"every connection stayed on the survivor {survivor}: {after}"
    assert clients.closed_by_server >= 1
    failed = sum(n for outcome, n in clients.outcomes.items() if outcome != "200")
    assert failed <= held[victim], "only requests in flight on the killed worker may fail"
