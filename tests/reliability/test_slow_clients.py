"""Clients that send their request headers slowly must not starve everyone else.

The fault is applied for real against a two-worker ``flaskserve serve``: 40
connections send a request line and then one header line a second, never
finishing their headers, while another client makes 20 ordinary predictions,
each allowed 5 s. Every ordinary prediction must be answered, under both servers.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from load_loop import timed_prediction

from live_server import RunningServer

pytestmark = pytest.mark.e2e

SLOW_CLIENTS = 40
ORDINARY_REQUESTS = 20
#: The slow clients stop dribbling after this long, whatever happens.
DRIBBLE_LIMIT_S = 10.0
#: Time between two ordinary requests: they spread over the slow clients' window.
ORDINARY_SPACING_S = 0.25

SERVERS = [pytest.param("gunicorn", id="gunicorn"), pytest.param("granian", id="granian")]


@dataclass
class SlowClients:
    """Sockets that dribble one header line a second, and which of them the server has closed."""

    sockets: list[socket.socket]
    closed_by_server: set[int] = field(default_factory=set)
    lines_sent: int = 0

    def open_count(self) -> int:
        return len(self.sockets) - len(self.closed_by_server)


@contextmanager
def slow_clients(url: str, count: int) -> Iterator[SlowClients]:
    """``count`` connections that send ``POST /predict HTTP/1.1`` and then a header line a second.

    One thread feeds every socket, for at most ``DRIBBLE_LIMIT_S``; leaving the
    block stops it and closes the sockets.
    """
    address = urlsplit(url)
    clients = SlowClients(
        [socket.create_connection((address.hostname, address.port), timeout=5) for _ in range(count)]
    )
    for sock in clients.sockets:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: localhost\r\n")
    stop = threading.Event()
    deadline = time.monotonic() + DRIBBLE_LIMIT_S

    def dribble() -> None:
        while not stop.wait(1.0) and time.monotonic() < deadline:
            clients.lines_sent += 1
            for number, sock in enumerate(clients.sockets):
                if number in clients.closed_by_server:
                    continue
                try:
                    sock.sendall(f"X-Slow-{clients.lines_sent}: {number}\r\n".encode())
                except OSError:
                    clients.closed_by_server.add(number)

    feeder = threading.Thread(target=dribble, daemon=True)
    feeder.start()
    try:
        yield clients
    finally:
        stop.set()
        feeder.join()
        for sock in clients.sockets:
            sock.close()


def nearest_rank(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[max(0, math.ceil(fraction * len(sorted_values)) - 1)]


@pytest.mark.parametrize("server_name", SERVERS)
def test_ordinary_requests_are_answered_while_slow_clients_dribble_their_headers(
    start_server: Callable[..., RunningServer], server_name: str
) -> None:
    server = start_server("--server", server_name, workers=2)

    with (
        slow_clients(server.url, SLOW_CLIENTS) as slow,
        ThreadPoolExecutor(max_workers=ORDINARY_REQUESTS) as pool,
    ):
        time.sleep(1.5)  # every slow client has sent a header line or two and is waiting
        held_while_measuring = slow.open_count()
        pending = []
        for _ in range(ORDINARY_REQUESTS):
            pending.append(pool.submit(timed_prediction, server.url))
            time.sleep(ORDINARY_SPACING_S)
        outcomes = [future.result() for future in pending]

    latencies = sorted(outcome for outcome in outcomes if isinstance(outcome, float))
    failures = [outcome for outcome in outcomes if isinstance(outcome, str)]
    if latencies:
        print(
            f"\n{server_name}: {len(latencies)}/{ORDINARY_REQUESTS} ordinary predictions answered "
            f"beside {SLOW_CLIENTS} slow clients; p50 {nearest_rank(latencies, 0.5) * 1000:.1f} ms, "
            f"p99 {nearest_rank(latencies, 0.99) * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms"
        )
    assert held_while_measuring == SLOW_CLIENTS, "the server cut the slow clients off before the measurement"
    assert failures == [], f"{len(failures)} of {ORDINARY_REQUESTS} ordinary predictions failed: {failures}"
    assert server.post("/predict", json={"x": 1, "y": 2}).status_code == 200
