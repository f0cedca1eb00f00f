"""The availability harness's clients: what each request's outcome is, and when a connection is new.

Each test serves one scripted conversation on a loopback socket: the server side
reads requests and answers, closes or resets exactly where the test says.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from traffic_clients import Answer, KeptAliveConnection, Orders, encode_post, read_batch, run_clients

from live_server import free_port

REQUEST = encode_post("127.0.0.1", "/predict", b"{}", {"X-API-Key": "key"})
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Model-Version: 3\r\n\r\n[]"


@contextmanager
def serving(script: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback listener whose accepted connections ``script`` handles, in a thread; yields its port."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        thread = threading.Thread(target=script, args=(listener,))
        thread.start()
        yield listener.getsockname()[1]
        thread.join(5)


def read_request(connection: socket.socket) -> None:
    received = b""
    while not received.endswith(b"{}"):
        received += connection.recv(65536)


def post(port: int, connection: KeptAliveConnection | None = None) -> Answer:
    return (connection or KeptAliveConnection("127.0.0.1", port, 5.0)).post(REQUEST)


def test_a_connect_to_a_closed_port_is_refused() -> None:
    assert post(free_port()) == Answer("refused", None, None, new_connection=True)


def test_a_connection_closed_after_the_request_was_read_is_closed() -> None:
    def close_after_reading(listener: socket.socket) -> None:
        connection, _ = listener.accept()
        with connection:
            read_request(connection)

    with serving(close_after_reading) as port:
        assert post(port).outcome == "closed"


def test_a_connection_closed_with_the_request_unread_is_reset() -> None:
    def close_unread(listener: socket.socket) -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(1, socket.MSG_PEEK)  # the request has arrived: closing now resets the connection

    with serving(close_unread) as port:
        assert post(port).outcome == "reset"


def test_an_answer_that_ends_before_its_length_is_cut() -> None:
    def answer_half(listener: socket.socket) -> None:
        connection, _ = listener.accept()
        with connection:
            read_request(connection)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n[1,")

    with serving(answer_half) as port:
        assert post(port).outcome == "cut"


def test_a_connection_is_kept_alive_and_replaced_once_the_server_closed_it_while_idle() -> None:
    def answer_twice_then_close_then_answer_anew(listener: socket.socket) -> None:
        connection, _ = listener.accept()
        with connection:
            for _ in range(2):
                read_request(connection)
                connection.sendall(OK)
        connection, _ = listener.accept()
        with connection:
            read_request(connection)
            connection.sendall(OK)

    with serving(answer_twice_then_close_then_answer_anew) as port:
        client = KeptAliveConnection("127.0.0.1", port, 5.0)
        first, second = post(port, client), post(port, client)
        time.sleep(0.1)  # the server's close has arrived
        third = post(port, client)
        client.close()

    assert (first.outcome, first.version, first.new_connection) == ("200", "3", True)
    assert (second.outcome, second.port, second.new_connection) == ("200", first.port, False)
    assert (third.outcome, third.new_connection) == ("200", True)
    assert third.port != first.port


def test_a_chunked_answer_is_read_whole_and_connection_close_is_obeyed() -> None:
    chunked = b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n1\r\n \r\n0\r\nA: b\r\n\r\n"
    closing = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]"

    def answer_chunked_then_closing(listener: socket.socket) -> None:
        connection, _ = listener.accept()
        with connection:
            for answer in (chunked, closing):
                read_request(connection)
                connection.sendall(answer)
        connection, _ = listener.accept()
        with connection:
            read_request(connection)
            connection.sendall(OK)

    with serving(answer_chunked_then_closing) as port:
        client = KeptAliveConnection("127.0.0.1", port, 5.0)
        answers = [post(port, client) for _ in range(3)]
        client.close()

    assert [(a.outcome, a.new_connection) for a in answers] == [("503", True), ("200", False), ("200", True)]


def test_the_closed_loop_streams_a_record_of_every_request_it_sent() -> None:
    def answer_each(listener: socket.socket) -> None:
        connection, _ = listener.accept()
        with connection:
            for _ in range(5):
                read_request(connection)
                connection.sendall(OK)

    with serving(answer_each) as port:
        orders = Orders("127.0.0.1", port, [REQUEST], 1, time.monotonic() + 5, 5, 5.0)
        reading, writing = socket.socketpair()
        with reading, writing, writing.makefile("wb") as sink, reading.makefile("rb") as source:
            run_clients(Orders.decode(orders.encode()), threading.Event(), sink)
            writing.shutdown(socket.SHUT_WR)
            records = []
            while (batch := read_batch(source)) is not None:
                records.extend(batch)

    assert [(r.outcome, r.version, r.new_connection) for r in records] == [("200", "3", True)] + [
        ("200", "3", False)
    ] * 4
    assert all(r.started <= r.ended for r in records)
