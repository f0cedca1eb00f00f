"""The gunicorn worker's threads (serving/gthread/pool.py), and the stream a thread reads a request from.

The pool replaces gunicorn's executor: each connection handed over is served in
a thread and its outcome handed back, an exception included; a stop lets what is
queued finish. The method queue that hands connections back wakes the event loop
once for however many callbacks, and loses none. The stream keeps the timeout
gunicorn's parser sets for the reads that reach the socket, which must still
bound such a read, and holds an answer's head until its body's first bytes.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator

import pytest

from flaskserve.serving.gthread.pool import MAX_CALLBACKS, MethodQueue, Outcome, Pool
from flaskserve.serving.gthread.stream import HeldBytes, Stream


class Collected:
    """The outcomes the pool hands back, by connection."""

    def __init__(self) -> None:
        self.outcomes: dict[object, Outcome] = {}
        self.threads: set[str] = set()
        self._lock = threading.Lock()
        self.all_in = threading.Event()
        self.expected = 0

    def done(self, conn: object, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes[conn] = outcome
            self.threads.add(threading.current_thread().name)
            if len(self.outcomes) == self.expected:
                self.all_in.set()


def serve(conn: object) -> object:
    if conn == "broken":
        raise RuntimeError("the app failed")
    return f"served {conn}"


def test_every_connection_handed_over_is_served_in_a_pool_thread_and_handed_back() -> None:
    collected = Collected()
    collected.expected = 20
    pool = Pool(4, serve, collected.done)
    for number in range(20):
        pool.hand(number)

    assert collected.all_in.wait(10)
    pool.shutdown()
    assert {conn: outcome.result() for conn, outcome in collected.outcomes.items()} == {
        number: f"served {number}" for number in range(20)
    }
    assert not any(outcome.cancelled() for outcome in collected.outcomes.values())
    assert collected.threads <= {f"flaskserve-request-{number}" for number in range(4)}


def test_an_exception_from_serving_reaches_the_event_loop_as_the_outcome() -> None:
    collected = Collected()
    collected.expected = 2
    pool = Pool(2, serve, collected.done)
    pool.hand("broken")
    pool.hand("fine")

    assert collected.all_in.wait(10)
    pool.shutdown()
    assert collected.outcomes["fine"].result() == "served fine"
    with pytest.raises(RuntimeError, match="the app failed"):
        collected.outcomes["broken"].result()


def test_a_stop_lets_the_queued_connections_be_served_first() -> None:
    release = threading.Event()
    collected = Collected()
    collected.expected = 5

    def slow(conn: object) -> object:
        release.wait(10)
        return conn

    pool = Pool(1, slow, collected.done)
    for number in range(5):
        pool.hand(number)
    stopper = threading.Thread(target=pool.shutdown)
    stopper.start()
    release.set()
    stopper.join(10)

    assert not stopper.is_alive()
    assert sorted(outcome.result() for outcome in collected.outcomes.values()) == [0, 1, 2, 3, 4]


@pytest.fixture
def connected() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


def test_the_stream_gives_the_bytes_read_ahead_before_the_socket(
    connected: tuple[socket.socket, socket.socket],
) -> None:
    server, client = connected
    stream = Stream(server, HeldBytes(1024), send_timeout_s=1.0)
    stream.hold([b"GET / HTTP/1.1\r\n", b"Host: x\r\n\r\n"])
    client.sendall(b"next")

    assert stream.recv(1024) == b"GET / HTTP/1.1\r\n"
    assert stream.recv(1024) == b"Host: x\r\n\r\n"
    assert stream.recv(1024) == b"next"


def test_a_timeout_set_on_the_stream_bounds_a_read_that_reaches_the_socket(
    connected: tuple[socket.socket, socket.socket],
) -> None:
    server, _client = connected
    stream = Stream(server, HeldBytes(1024), send_timeout_s=1.0)
    stream.hold([b"held"])
    stream.settimeout(0.05)

    assert stream.gettimeout() == 0.05
    assert server.gettimeout() is None, "the socket itself is left as it is"
    assert stream.recv(1024) == b"held"
    with pytest.raises(TimeoutError):
        stream.recv(1024)
    assert server.gettimeout() is None


def test_an_answers_head_goes_out_with_its_first_body_piece_in_one_send(
    connected: tuple[socket.socket, socket.socket],
) -> None:
    server, client = connected
    stream = Stream(server, HeldBytes(1024), send_timeout_s=1.0)
    stream.hold([b"GET / HTTP/1.1\r\n\r\n"])

    stream.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
    assert not select.select([client], [], [], 0.05)[0], "the head alone is held"
    stream.sendall(b"body")
    assert client.recv(1024) == b"HTTP/1.1 200 OK\r\n\r\nbody"


def test_a_held_write_goes_out_when_the_thread_is_done(
    connected: tuple[socket.socket, socket.socket],
) -> None:
    server, client = connected
    stream = Stream(server, HeldBytes(1024), send_timeout_s=1.0)
    stream.hold([])

    stream.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
    stream.flush()
    assert client.recv(1024) == b"HTTP/1.1 204 No Content\r\n\r\n"


def test_a_large_first_body_piece_follows_the_head_in_order(
    connected: tuple[socket.socket, socket.socket],
) -> None:
    server, client = connected
    server.setblocking(False)  # as the worker's sockets are
    stream = Stream(server, HeldBytes(4 * 1024 * 1024), send_timeout_s=5.0)
    stream.hold([])
    body = bytes(range(256)) * 1024

    stream.sendall(b"head")
    stream.sendall(body)
    stream.sendall(b"tail")
    stream.flush()
    received = bytearray()
    while len(received) < len(body) + 8:
        with contextlib.suppress(BlockingIOError):  # the event loop's part
            stream.send_unsent()
        received += client.recv(1 << 20)
    assert bytes(received) == b"head" + body + b"tail"


@pytest.fixture
def method_queue() -> Iterator[MethodQueue]:
    queue = MethodQueue()
    queue.init()
    yield queue
    queue.close()


def _woken(queue: MethodQueue) -> bool:
    return bool(select.select([queue.fileno()], [], [], 0.5)[0])


def test_callbacks_deferred_from_many_threads_all_run_once_each(method_queue: MethodQueue) -> None:
    ran: list[int] = []
    senders = [
        threading.Thread(
            target=lambda base=base: [method_queue.defer(ran.append, base + n) for n in range(500)]
        )
        for base in range(0, 4000, 500)
    ]
    for sender in senders:
        sender.start()
    while any(sender.is_alive() for sender in senders) or len(ran) < 4000:
        assert _woken(method_queue), f"callbacks left without a wake: {4000 - len(ran)}"
        method_queue.run_callbacks(None)
    assert sorted(ran) == list(range(4000))


def test_callbacks_beyond_one_runs_share_are_run_on_the_next_wake(method_queue: MethodQueue) -> None:
    ran: list[int] = []
    for number in range(MAX_CALLBACKS + 5):
        method_queue.defer(ran.append, number)

    assert _woken(method_queue)
    method_queue.run_callbacks(None)
    assert len(ran) == MAX_CALLBACKS
    assert _woken(method_queue)
    method_queue.run_callbacks(None)
    assert ran == list(range(MAX_CALLBACKS + 5))
    assert not select.select([method_queue.fileno()], [], [], 0)[0], "no wake is left pending"
