"""A worker that joins makes the others close connections while they hold more than their share."""

from __future__ import annotations

import multiprocessing
import socket
from collections.abc import Iterator

import pytest

from flaskserve.lifecycle import rebalancing
from flaskserve.lifecycle.rebalancing import announce_arrival, closing_connections, port_connections


def _sibling_joins() -> None:
    """What a worker forked later does once it serves."""
    process = multiprocessing.get_context("fork").Process(target=announce_arrival, args=(PORT, 2))
    process.start()
    process.join(10)
    assert process.exitcode == 0


PORT = 8000


class Connections:
    """Stands in for ``/proc``: how many connections this worker and all of them hold."""

    def __init__(self, mine: int, everyone: int) -> None:
        self.mine, self.everyone = mine, everyone

    def __call__(self, port: int) -> tuple[int, int]:
        assert port == PORT
        return self.mine, self.everyone


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[Connections]:
    """This process serves with one sibling; it holds 7 of the port's 8 connections, and reads them anew."""
    connections = Connections(7, 8)
    monkeypatch.setattr(rebalancing, "port_connections", connections)
    monkeypatch.setattr(rebalancing, "LOOK_EVERY_S", 0.0)
    announce_arrival(PORT, 2)
    yield connections
    rebalancing._here.until = 0.0


@pytest.mark.usefixtures("held")
def test_a_worker_whose_sibling_did_not_change_closes_nothing() -> None:
    assert [closing_connections() for _ in range(5)] == [False] * 5


def test_a_sibling_joining_closes_answers_until_this_worker_holds_its_share(held: Connections) -> None:
    _sibling_joins()

    closed = []
    for _ in range(10):
        closed.append(closing_connections())
        if closed[-1]:
            held.mine -= 1  # the client went, and the other worker took it
    assert closed == [True, True, True, False, False, False, False, False, False, False]
    assert held.mine == 4


def test_clients_that_come_back_are_closed_again(held: Connections) -> None:
    _sibling_joins()

    assert closing_connections()  # the client came back to this worker: still 7 of 8
    assert closing_connections()
    assert closing_connections()
    assert closing_connections()


def test_the_closing_ends_after_its_time_whatever_is_left(
    held: Connections, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rebalancing, "REBALANCE_S", 0.0)
    _sibling_joins()

    assert closing_connections() is False


def test_a_process_that_never_announced_itself_closes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rebalancing._here, "pid", -1)  # as in a worker forked and not serving yet

    _sibling_joins()

    assert closing_connections() is False


def test_port_connections_counts_the_connections_accepted_on_a_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        accepted = [listener.accept()[0] for _ in clients]
        try:
            # Both ends live in this process: only the accepted ones have the port as their local one.
            assert port_connections(port) == (2, 2)
        finally:
            for end in (*clients, *accepted):
                end.close()
