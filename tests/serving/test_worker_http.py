"""HTTP/1.1 through the gunicorn worker (serving/gthread), on a real gunicorn with a small WSGI app.

The worker reads each request in its event loop, hands it to a thread through a
stream that holds an answer's head until its body's first bytes, and takes the
connection back for keep-alive itself. What a client sees must stay gunicorn's:
pipelined requests answered in order, chunked bodies, ``Expect: 100-continue``,
``HEAD``, keep-alive and close, answers of every shape intact, gunicorn's own
refusals, a ``Date`` that is the current one, and the user's gunicorn hooks —
with gunicorn's C parser (``gunicorn_h1c``) and with its Python fallback alike.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import BinaryIO

import pytest

import flaskserve
from live_server import free_port

pytestmark = pytest.mark.e2e

APP = """
LARGE = bytes(range(256)) * 4096


def app(environ, start_response):
    path = environ["PATH_INFO"]
    body = environ["wsgi.input"].read()
    if path == "/echo":
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"piece %d\\n" % number for number in range(5))
    if path == "/large":
        start_response("200 OK", [("Content-Length", str(len(LARGE)))])
        return [LARGE]
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    if path == "/unread":
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    if path == "/hooked":
        hooked = environ.get("HTTP_X_PRE_REQUEST", "").encode()
        start_response("200 OK", [("Content-Length", str(len(hooked)))])
        return [hooked]
    raise RuntimeError("the app failed")
"""
#: gunicorn settings: a ``pre_request`` hook that marks each request for the app to see.
CONFIG = """
def pre_request(worker, req):
    req.headers.append(("X-PRE-REQUEST", "ran"))
"""
LARGE = bytes(range(256)) * 4096
STREAMED = b"".join(b"piece %d\n" % number for number in range(5))


#: gunicorn's two request parsers: its C one (gunicorn_h1c, a dependency) and its Python fallback.
PARSERS = ("fast", "python")


@pytest.fixture(scope="module", params=PARSERS)
def address(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    folder = tmp_path_factory.mktemp("worker-http")
    (folder / "worker_http_app.py").write_text(APP, encoding="utf-8")
    (folder / "worker_http_conf.py").write_text(CONFIG, encoding="utf-8")
    port = free_port()
    source = str(Path(flaskserve.__file__).resolve().parents[1])
    command = [sys.executable, "-m", "gunicorn", "--workers", "1", "--threads", "4"]
    command += ["--bind", f"127.0.0.1:{port}", "--no-control-socket", "--chdir", str(folder)]
    command += ["--config", str(folder / "worker_http_conf.py"), "--http-parser", request.param]
    command += ["--worker-class", "flaskserve.serving.gthread.HeadReadingWorker", "worker_http_app:app"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, str(folder)])}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, "gunicorn exited at startup"
                assert time.monotonic() < deadline, "gunicorn did not start listening"
                time.sleep(0.1)
        yield "127.0.0.1", port
    finally:
        server.terminate()
        server.wait(15)


@dataclass
class Answer:
    status: int
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


def read_answer(reader: BinaryIO, *, head_only: bool = False) -> Answer:
    """One answer from ``reader``, leaving whatever follows it (a pipelined answer) unread."""
    status_line = reader.readline()
    assert status_line.startswith(b"HTTP/1."), status_line
    answer = Answer(int(status_line.split()[1]))
    while (line := reader.readline()) != b"\r\n":
        assert line.endswith(b"\r\n"), line
        name, _, value = line.decode("latin-1").partition(":")
        answer.headers.setdefault(name.strip().lower(), []).append(value.strip())
    if head_only or answer.status in (204, 304) or 100 <= answer.status < 200:
        return answer
    if answer.header("Transfer-Encoding") == "chunked":
        pieces = []
        while (size := int(reader.readline().split(b";")[0], 16)) > 0:
            pieces.append(reader.read(size))
            assert reader.read(2) == b"\r\n"
        assert reader.read(2) == b"\r\n"
        answer.body = b"".join(pieces)
    else:
        answer.body = reader.read(int(answer.header("Content-Length") or 0))
    return answer


@pytest.fixture
def connection(address: tuple[str, int]) -> Iterator[tuple[socket.socket, BinaryIO]]:
    sock = socket.create_connection(address, timeout=10)
    reader = sock.makefile("rb")
    yield sock, reader
    reader.close()
    sock.close()


def request(method: str, path: str, body: bytes = b"", *fields: str, version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: localhost", *fields]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def closed_by_server(sock: socket.socket, reader: BinaryIO) -> bool:
    sock.settimeout(5)
    return reader.read() == b""


def test_pipelined_requests_of_every_shape_are_answered_in_order(
    connection: tuple[socket.socket, BinaryIO],
) -> None:
    sock, reader = connection
    chunked = (
        request("POST", "/echo", b"", "Transfer-Encoding: chunked") + b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"
    )
    sock.sendall(
        request("POST", "/echo", b"hello")
        + request("HEAD", "/large")
        + request("GET", "/stream")
        + chunked
        + request("GET", "/empty")
        + request("POST", "/unread", b"a body the app never reads")
        + request("GET", "/large")
    )

    echoed = read_answer(reader)
    assert (echoed.status, echoed.body) == (200, b"hello")
    head = read_answer(reader, head_only=True)
    assert (head.status, head.header("Content-Length")) == (200, str(len(LARGE)))
    streamed = read_answer(reader)
    assert (streamed.status, streamed.header("Transfer-Encoding"), streamed.body) == (
        200,
        "chunked",
        STREAMED,
    )
    assert read_answer(reader).body == b"abcde"
    empty = read_answer(reader)
    assert (empty.status, empty.body, empty.header("Content-Length")) == (204, b"", None)
    assert read_answer(reader).body == b"ok"
    large = read_answer(reader)
    assert large.body == LARGE
    assert large.header("Connection") == "keep-alive"

    sock.sendall(request("POST", "/echo", b"still open"))
    assert read_answer(reader).body == b"still open"


def test_a_client_that_expects_100_continue_gets_it_before_it_sends_the_body(
    connection: tuple[socket.socket, BinaryIO],
) -> None:
    sock, reader = connection
    sock.sendall(request("POST", "/echo", b"", "Expect: 100-continue", "Content-Length: 4"))
    assert reader.readline() == b"HTTP/1.1 100 Continue\r\n"
    assert reader.readline() == b"\r\n"
    sock.sendall(b"body")
    assert read_answer(reader).body == b"body"


@pytest.mark.parametrize(
    ("closing", "version"),
    [
        pytest.param(request("POST", "/echo", b"bye", "Connection: close"), "1.1", id="connection-close"),
        pytest.param(request("POST", "/echo", b"bye", version="1.0"), "1.0", id="http-1.0"),
    ],
)
def test_an_answer_that_closes_the_connection_is_whole_and_then_the_connection_closes(
    connection: tuple[socket.socket, BinaryIO], closing: bytes, version: str
) -> None:
    sock, reader = connection
    sock.sendall(closing)
    everything = reader.read()  # until the server closes
    assert everything.startswith(f"HTTP/{version} 200 OK\r\n".encode())
    assert b"\r\nConnection: close\r\n" in everything
    assert everything.endswith(b"\r\n\r\nbye")


def test_an_app_failure_is_a_500_and_the_connection_closes(
    connection: tuple[socket.socket, BinaryIO],
) -> None:
    sock, reader = connection
    sock.sendall(request("GET", "/fails"))
    assert read_answer(reader).status == 500
    assert closed_by_server(sock, reader)


def test_a_request_gunicorn_refuses_is_answered_by_gunicorn(
    connection: tuple[socket.socket, BinaryIO],
) -> None:
    """gunicorn's own refusal (more fields than ``limit_request_fields``) is the thread's only write."""
    sock, reader = connection
    sock.sendall(request("GET", "/echo", b"", *(f"X-Field-{number}: 1" for number in range(101))))
    assert read_answer(reader).status == 431
    assert closed_by_server(sock, reader)


def test_every_answer_carries_the_current_date_once(connection: tuple[socket.socket, BinaryIO]) -> None:
    sock, reader = connection
    for _ in range(3):
        sock.sendall(request("GET", "/empty"))
        answer = read_answer(reader)
        dates = answer.headers["date"]
        assert len(dates) == 1
        assert abs((parsedate_to_datetime(dates[0]) - datetime.now(timezone.utc)).total_seconds()) < 5
        assert len(answer.headers["server"]) == 1


def test_the_date_follows_the_clock_from_one_second_to_the_next(
    connection: tuple[socket.socket, BinaryIO],
) -> None:
    sock, reader = connection
    dates = []
    for pause in (1.1, 0.0):
        sock.sendall(request("GET", "/empty"))
        dates.append(parsedate_to_datetime(read_answer(reader).headers["date"][0]))
        time.sleep(pause)
    assert (dates[1] - dates[0]).total_seconds() >= 1
    assert abs((dates[1] - datetime.now(timezone.utc)).total_seconds()) < 5


def test_a_pre_request_hook_of_the_users_runs_for_each_request(
    connection: tuple[socket.socket, BinaryIO],
) -> None:
    sock, reader = connection
    for _ in range(2):
        sock.sendall(request("GET", "/hooked"))
        assert read_answer(reader).body == b"ran"
