"""Hostile request bodies against a real gunicorn server: each gets a 4xx, and the server stays up.

The bodies are written on raw sockets, so that the test controls exactly what goes on
the wire (a chunked body, thousands of one-byte chunks, a Content-Length that lies).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest
from tls_server import HttpsLauncher

from flaskserve.security.keys import KeyStore
from live_server import RunningServer

pytestmark = pytest.mark.e2e

MAX_BODY = 64 * 1024
MAX_ROWS = 100
MAX_INPUTS = 16


@pytest.fixture(scope="module")
def hostile_target(
    repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, str]]:
    """One two-worker server with small limits for the whole module, and a key that may predict."""
    workdir = tmp_path_factory.mktemp("hostile")
    store = KeyStore(workdir / "keys.json")
    key = store.create("attacker", ["predict"])
    store.save()
    launcher = HttpsLauncher(repository, workdir)
    server = launcher.start(
        "--keys-file",
        str(workdir / "keys.json"),
        env={
            "FLASKSERVE_LIMITS__MAX_BODY_BYTES": str(MAX_BODY),
            "FLASKSERVE_LIMITS__MAX_ROWS": str(MAX_ROWS),
            "FLASKSERVE_LIMITS__MAX_INPUTS": str(MAX_INPUTS),
        },
    )
    yield server, key
    launcher.stop_all()


def exchange(server: RunningServer, raw: bytes) -> tuple[int, bytes]:
    """Send ``raw`` as one HTTP request on a new connection; return the status and body of the answer."""
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        # The server may answer and close before it took the whole body: then read its answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(raw)
        answer = b""
        while chunk := _receive(connection):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head, "the server closed the connection without an answer"
    return int(head.split(b" ", 2)[1]), body


def _receive(connection: socket.socket) -> bytes:
    try:
        return connection.recv(65536)
    except ConnectionResetError:
        return b""


def request(
    path: str, key: str, body: bytes, *, chunked: bool = False, content_type: str = "application/json"
) -> bytes:
    head = [
        f"POST {path} HTTP/1.1",
        "Host: localhost",
        f"Authorization: Bearer {key}",
        f"Content-Type: {content_type}",
        "Connection: close",
    ]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def chunks(body: bytes, size: int) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


def rows(count: int) -> bytes:
    return orjson.dumps({"instances": [[1.0, 2.0]] * count})


HOSTILE: list[object] = [
    pytest.param(
        lambda key: request("/predict", key, b"[" + b"1," * MAX_BODY + b"1]"),
        413,
        id="oversize body with Content-Length",
    ),
    pytest.param(
        lambda key: request("/predict", key, chunks(b"[" + b"1," * MAX_BODY + b"1]", 8192), chunked=True),
        413,
        id="oversize chunked body without Content-Length",
    ),
    pytest.param(
        lambda key: request("/predict", key, chunks(b" " * (MAX_BODY + 10), 1), chunked=True),
        413,
        id="oversize body in one-byte chunks",
    ),
    pytest.param(
        lambda key: request("/predict", key, chunks(rows(2), 1), chunked=True),
        200,
        id="small body in one-byte chunks is served",
    ),
    pytest.param(
        lambda key: request("/predict", key, b"[" * 5000 + b"]" * 5000),
        400,
        id="deeply nested JSON",
    ),
    pytest.param(
        lambda key: request("/predict", key, rows(MAX_ROWS + 1)),
        400,
        id="more rows than allowed",
    ),
    pytest.param(
        lambda key: request(
            "/v2/models/linear/infer",
            key,
            orjson.dumps(
                {"inputs": [{"name": "x", "shape": [10**9, 10**9], "datatype": "FP64", "data": [1.0]}]}
            ),
        ),
        400,
        id="V2 tensor claiming a huge shape",
    ),
    pytest.param(
        lambda key: request(
            "/v2/models/linear/infer",
            key,
            orjson.dumps(
                {
                    "inputs": [
                        {"name": f"i{n}", "shape": [1], "datatype": "FP64", "data": [1.0]}
                        for n in range(MAX_INPUTS + 1)
                    ]
                }
            ),
        ),
        400,
        id="V2 request with too many inputs",
    ),
    pytest.param(
        lambda key: request("/predict", key, b"<xml/>", content_type="application/xml"),
        415,
        id="not JSON",
    ),
    pytest.param(
        lambda key: request("/predict", key, b'{"x": 1, "y": NaN}'),
        400,
        id="invalid JSON",
    ),
    pytest.param(
        lambda key: request("/predict", key, b"{}")[:-2].replace(
            b"Content-Length: 2", b"Content-Length: 2000000000"
        ),
        413,
        id="Content-Length claiming 2 GB",
    ),
]


@pytest.mark.parametrize(("build", "status"), HOSTILE)
def test_hostile_bodies_get_a_4xx_and_the_server_stays_up(
    hostile_target: tuple[RunningServer, str], build: Callable[[str], bytes], status: int
) -> None:
    server, key = hostile_target

    answered, body = exchange(server, build(key))

    assert answered == status, body[:300]
    if status >= 400:
        assert orjson.loads(body)["code"]
    assert server.get("/livez").status_code == 200
    healthy = server.post("/predict", json={"x": 1, "y": 2}, headers={"Authorization": f"Bearer {key}"})
    assert healthy.status_code == 200
