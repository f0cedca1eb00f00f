"""Abusive clients must not starve ordinary ones, under both servers.

Each case applies one kind of abuse for real to a two-worker ``flaskserve
serve`` (one server per kind, shared by the module) while another client makes
``ORDINARY_REQUESTS`` ordinary predictions, each on a connection of its own and
allowed ``ORDINARY_TIMEOUT_S``; every one must be answered. The cases:

- slow bodies: complete heads (``Content-Length: 100000``, or chunked) whose
  bodies then come a few bytes a second;
- slow readers: requests for 10,000-row answers whose sender never reads them,
  so the socket buffers fill, and clients that ask the server to close and then
  neither read nor close;
- many idle kept-alive connections;
- a request refused before its body was read: the next request on the same
  connection is answered, or the refusal said the connection closes;
- a 1 MB header, and 10,000 small ones: refused quickly (431 or 400), without
  memory growing;
- request smuggling shapes: refused (or the connection closed), never read as
  two requests; the request hidden in the body never reaches the app;
- absurd methods: 405, 400 or 501, never a 500.

``ABUSE_LONG=1`` (``make abuse``) runs more abusive connections and prints the
table docs/reliability.md quotes.
"""

from __future__ import annotations

import http.client
import math
import os
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest
from load_loop import timed_prediction

from live_server import RunningServer, ServerLauncher, descendants
from nginx import Nginx

pytestmark = pytest.mark.e2e

LONG = os.environ.get("ABUSE_LONG") == "1"
ORDINARY_REQUESTS = 20
#: Time between two ordinary requests: they spread over the abuse's window.
ORDINARY_SPACING_S = 0.25
#: No abusive client keeps going longer than this, whatever happens.
ABUSE_LIMIT_S = 12.0

SLOW_BODIES = 200 if LONG else 40
SLOW_READERS = 40 if LONG else 12
#: Requests each slow reader sends without reading an answer: their answers (about 5 MB) overflow the
#: server's socket send buffer, which Linux grows to 4 MB at most by default (``net.ipv4.tcp_wmem``).
PIPELINED = 30
ANSWER_ROWS = 10_000
IDLE_CONNECTIONS = 500 if LONG else 200
#: Refused requests (giant heads, smuggling, methods) sent while the ordinary ones are measured.
CRAFTED_ROUNDS = 20 if LONG else 4
#: Resident memory the server may gain while refusing giant heads.
MAX_GROWTH_BYTES = 64 * 1024 * 1024

SERVERS = ["gunicorn", "granian"]
HIDDEN = b"POST /v2/repository/models/linear/unload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"
STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


@dataclass
class Served:
    name: str
    server: RunningServer
    #: Where clients connect: the server itself, or a proxy in front of it.
    url: str = ""

    def __post_init__(self) -> None:
        self.url = self.url or self.server.url

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        assert parts.hostname is not None
        assert parts.port is not None
        return parts.hostname, parts.port


@dataclass
class Measured:
    """What the ordinary client saw during one case."""

    case: str
    server: str
    latencies: list[float]
    failures: list[str]
    note: str = ""

    @property
    def answered(self) -> int:
        return len(self.latencies)

    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return math.nan
        return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)] * 1000

    def line(self) -> str:
        return (
            f"{self.case} [{self.server}]: {self.answered}/{ORDINARY_REQUESTS} ordinary predictions "
            f"answered, p99 {self.p99_ms():.1f} ms; failures {Counter(self.failures)}; {self.note}"
        )


RESULTS: list[Measured] = []


@pytest.fixture(scope="module", autouse=True)
def table() -> Iterator[None]:
    """Print every case's figures once the module is done (``make abuse`` shows them)."""
    yield
    if not RESULTS:
        return
    cases = list(dict.fromkeys(result.case for result in RESULTS))
    servers = list(dict.fromkeys(result.server for result in RESULTS))
    found = {(result.case, result.server): result for result in RESULTS}
    header = "| case | " + " | ".join(f"{name}: answered, p99" for name in servers) + " |"
    rows = [header, "|---|" + "---|" * len(servers)]
    for case in cases:
        cells = []
        for name in servers:
            result = found.get((case, name))
            if result is None:
                cells.append("—")
            elif not result.answered:
                cells.append(f"0/{ORDINARY_REQUESTS}")
            else:
                cells.append(f"{result.answered}/{ORDINARY_REQUESTS}, {result.p99_ms():.1f} ms")
        rows.append(f"| {case} | " + " | ".join(cells) + " |")
    print("\n\n" + "\n".join(rows))


@pytest.fixture(scope="module", params=SERVERS)
def served(
    request: pytest.FixtureRequest, repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    launcher = ServerLauncher(repository, tmp_path_factory.mktemp(f"abuse-{request.param}"))
    server = launcher.start("--server", request.param, workers=2)
    yield Served(request.param, server)
    launcher.stop_all()


@pytest.fixture(scope="module")
def buffering_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[Served], Served]]:
    """Puts Debian's nginx, which buffers a whole request body before passing it on, in front of a server."""
    proxies: dict[str, Nginx] = {}

    def in_front_of(served: Served) -> Served:
        if served.name not in proxies:
            host, port = served.address
            proxy = Nginx(tmp_path_factory.mktemp(f"nginx-{served.name}"), [f"{host}:{port}"])
            proxy.start()
            proxies[served.name] = proxy
        return Served(f"{served.name} behind nginx", served.server, proxies[served.name].url)

    yield in_front_of
    for proxy in proxies.values():
        proxy.stop()


def measure(served: Served, case: str, note: Callable[[], str] = str) -> Measured:
    """``ORDINARY_REQUESTS`` ordinary predictions spread over the next few seconds; records the result."""
    with ThreadPoolExecutor(max_workers=ORDINARY_REQUESTS) as pool:
        pending = []
        for _ in range(ORDINARY_REQUESTS):
            pending.append(pool.submit(timed_prediction, served.url))
            time.sleep(ORDINARY_SPACING_S)
        outcomes = [future.result() for future in pending]
    result = Measured(
        case,
        served.name,
        latencies=[outcome for outcome in outcomes if isinstance(outcome, float)],
        failures=[outcome for outcome in outcomes if isinstance(outcome, str)],
    )
    result.note = note()
    RESULTS.append(result)
    print("\n" + result.line())
    return result


def assert_all_answered(result: Measured) -> None:
    assert result.failures == [], (
        f"{len(result.failures)} of {ORDINARY_REQUESTS} ordinary predictions failed: {result.failures}"
    )


def connect(served: Served, *, receive_buffer: int | None = None, timeout: float = 5.0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        # Before connecting, so that the window the server sees is small from the start.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(timeout)
    sock.connect(served.address)
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, str]:
    """Everything the server sends until it closes (or ``timeout`` passes); and how it ended."""
    received = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return bytes(received), "open"
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return bytes(received), "open"
        except ConnectionResetError:
            return bytes(received), "reset"
        if not chunk:
            return bytes(received), "closed"
        received += chunk


def statuses(answer: bytes) -> list[int]:
    """The final statuses in what the server sent (interim 1xx answers left out)."""
    found = [int(match.group(1)) for match in STATUS_LINE.finditer(answer)]
    return [status for status in found if status >= 200]


def server_memory(served: Served) -> int:
    """Resident bytes of the master and its workers."""
    total = 0
    for pid in [served.server.process.pid, *descendants(served.server.process.pid)]:
        with suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


@dataclass
class Dribblers:
    """Connections fed a little at a time by one thread, and which of them the server has closed."""

    sockets: list[socket.socket]
    closed_by_server: set[int] = field(default_factory=set)

    def open_count(self) -> int:
        return len(self.sockets) - len(self.closed_by_server)


@contextmanager
def dribbling(served: Served, count: int, head: bytes, piece: bytes) -> Iterator[Dribblers]:
    """``count`` connections that send ``head`` and then ``piece`` every second, for ``ABUSE_LIMIT_S``."""
    clients = Dribblers([connect(served) for _ in range(count)])
    for sock in clients.sockets:
        sock.sendall(head)
    stop = threading.Event()
    deadline = time.monotonic() + ABUSE_LIMIT_S

    def feed() -> None:
        while not stop.wait(1.0) and time.monotonic() < deadline:
            for number, sock in enumerate(clients.sockets):
                if number in clients.closed_by_server:
                    continue
                try:
                    sock.sendall(piece)
                except OSError:
                    clients.closed_by_server.add(number)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        yield clients
    finally:
        stop.set()
        feeder.join()
        for sock in clients.sockets:
            sock.close()


def still_serving(served: Served) -> None:
    """The server answers, and the model the hidden requests would unload is still there."""
    assert served.server.post("/predict", json={"x": 1, "y": 2}).status_code == 200
    assert served.server.get("/v2/models/linear/ready").status_code == 200


# -- 1. slow bodies ------------------------------------------------------------------------------

SLOW_BODY_SHAPES = [
    pytest.param(
        "content-length",
        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
        b"[1, 2",
        id="content-length",
    ),
    pytest.param(
        "chunked",
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"5\r\n[1, 2\r\n",
        id="chunked",
    ),
]


@pytest.mark.parametrize(("shape", "framing", "piece"), SLOW_BODY_SHAPES)
def test_bodies_sent_a_few_bytes_a_second_starve_no_one(
    served: Served, buffering_proxy: Callable[[Served], Served], shape: str, framing: bytes, piece: bytes
) -> None:
    if served.name == "granian":
        # granian reads a WSGI body in the thread that runs the app and has no body timeout, so no setting
        # of its own can bound a slow body: it is deployed behind a buffering proxy (docs/reliability.md).
        served = buffering_proxy(served)
    head = b"POST /predict HTTP/1.1\r\nHost: localhost\r\n" + framing
    with dribbling(served, SLOW_BODIES, head, piece) as slow:
        time.sleep(1.5)  # every slow client has sent its head and a piece or two
        held = slow.open_count()
        result = measure(
            served, f"{SLOW_BODIES} slow bodies ({shape})", lambda: f"{held} slow clients held at the start"
        )
    assert held == SLOW_BODIES, "the server cut the slow clients off before the measurement"
    assert_all_answered(result)


# -- 2. slow readers -----------------------------------------------------------------------------


def large_prediction_request() -> bytes:
    body = orjson.dumps({"instances": [[1.5, 2.5]] * ANSWER_ROWS})
    head = (
        "POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def test_clients_that_never_read_their_large_answers_starve_no_one(served: Served) -> None:
    requests_bytes = large_prediction_request() * PIPELINED
    readers = [connect(served, receive_buffer=4096) for _ in range(SLOW_READERS)]
    senders = []
    try:
        for sock in readers:
            # The server may stop reading once it cannot write: send from threads, never blocking the test.
            sender = threading.Thread(target=_send_quietly, args=(sock, requests_bytes), daemon=True)
            sender.start()
            senders.append(sender)
        time.sleep(1.5)  # the first answers fill the socket buffers
        result = measure(served, f"{SLOW_READERS} slow readers ({ANSWER_ROWS:,}-row answers)")
    finally:
        for sock in readers:
            sock.close()
        for sender in senders:
            sender.join(timeout=5)
    assert_all_answered(result)
    still_serving(served)


def test_clients_that_ask_for_a_close_and_then_hold_the_connection_starve_no_one(served: Served) -> None:
    """The server closes after answering, and the client neither reads nor closes: a lingering close."""
    request_bytes = b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    holders: list[socket.socket] = []
    stop = threading.Event()
    deadline = time.monotonic() + ABUSE_LIMIT_S

    def hold_more() -> None:
        # Ten new connections a second, each holding on after its answer.
        while not stop.wait(0.1) and time.monotonic() < deadline and len(holders) < 500:
            with suppress(OSError):
                sock = connect(served)
                sock.sendall(request_bytes)
                holders.append(sock)

    opener = threading.Thread(target=hold_more, daemon=True)
    opener.start()
    try:
        time.sleep(1.0)
        result = measure(served, "clients holding the connection after Connection: close")
    finally:
        stop.set()
        opener.join()
        for sock in holders:
            sock.close()
    assert_all_answered(result)


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with suppress(OSError):
        sock.settimeout(ABUSE_LIMIT_S)
        sock.sendall(data)


# -- 3. idle kept-alive connections ----------------------------------------------------------------


def test_many_idle_kept_alive_connections_starve_no_one(served: Served) -> None:
    request_bytes = b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n"
    idle: list[socket.socket] = []
    try:
        started = time.monotonic()
        for _ in range(IDLE_CONNECTIONS):
            if time.monotonic() - started > ABUSE_LIMIT_S:
                break
            sock = connect(served)
            sock.sendall(request_bytes)
            answer = sock.recv(65536)
            assert statuses(answer) == [200], answer[:200]
            idle.append(sock)
        result = measure(
            served, f"{IDLE_CONNECTIONS} idle kept-alive connections", lambda: f"{len(idle)} opened"
        )
    finally:
        for sock in idle:
            sock.close()
    assert len(idle) == IDLE_CONNECTIONS
    assert_all_answered(result)


def read_answer(sock: socket.socket) -> http.client.HTTPResponse:
    """One whole answer from a kept-alive connection."""
    answer = http.client.HTTPResponse(sock)
    answer.begin()
    answer.read()
    return answer


@pytest.mark.parametrize(
    ("body", "pause_s"),
    [
        pytest.param(b"[" + b"1," * 20_000 + b"1]", 0.0, id="large-body-sent-with-its-head"),
        # As requests sends a body: in a send of its own after the head's.
        pytest.param(b'{"inputs": []}', 0.1, id="small-body-sent-after-its-head"),
    ],
)
def test_a_request_refused_before_its_body_was_read_does_not_lose_the_next_one(
    served: Served, body: bytes, pause_s: float
) -> None:
    """An unknown model is refused before its body is read; the next request on the connection is answered.

    Found by the soak under granian: a refused request whose body had not all
    arrived was answered as if the connection stayed open, then the connection
    was closed, and the client's next request on it got no answer. Under
    gunicorn the body's unread rest was taken for the next request's head. The
    answer must either keep the connection usable or say ``Connection: close``.
    """
    head = (
        "POST /v2/models/nosuch/infer HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    ordinary = b'{"x": 1, "y": 2}'
    follow = (
        b"POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(ordinary), ordinary)
    )
    with connect(served) as sock:
        sock.sendall(head)
        time.sleep(pause_s)
        sock.sendall(body)
        refused = read_answer(sock)
        assert refused.status == 404
        if (refused.getheader("Connection") or "").lower() == "close":
            assert read_until_closed(sock, 5.0)[1] in ("closed", "reset")
            return
        sock.sendall(follow)
        assert read_answer(sock).status == 200


def test_a_body_cut_short_of_its_content_length_is_never_answered_for_what_came(served: Served) -> None:
    """A client that stops sending after a whole JSON document, short of its ``Content-Length``.

    Found with a raw socket under granian: the server hands the application what
    came, then the end of the stream, and the prediction was answered 200. It is
    now refused (400); gunicorn's worker closes the connection unanswered.
    """
    body = b'{"x": 1, "y": 2}'
    head = (
        "POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body) + 14}\r\n\r\n"
    ).encode()
    with connect(served) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        answer, _ended = read_until_closed(sock, 5.0)

    assert statuses(answer) in ([], [400])


# -- helpers for refused requests ----------------------------------------------------------------


@dataclass
class Refusal:
    """How the server answered one crafted request."""

    statuses: list[int]
    ended: str
    seconds: float


def send_crafted(served: Served, data: bytes, *, timeout: float = 5.0) -> Refusal:
    """Send ``data`` on a new connection (from a thread, as the server may stop reading) and read the rest."""
    started = time.monotonic()
    sock = connect(served, timeout=timeout)
    sender = threading.Thread(target=_send_quietly, args=(sock, data), daemon=True)
    try:
        sender.start()
        answer, ended = read_until_closed(sock, timeout)
    finally:
        sock.close()
        sender.join(timeout=timeout)
    return Refusal(statuses(answer), ended, time.monotonic() - started)


@contextmanager
def crafted_in_background(served: Served, shapes: dict[str, bytes]) -> Iterator[dict[str, list[Refusal]]]:
    """Send every shape ``CRAFTED_ROUNDS`` times, one after the other, while the block runs."""
    seen: dict[str, list[Refusal]] = {name: [] for name in shapes}
    stop = threading.Event()
    deadline = time.monotonic() + ABUSE_LIMIT_S * 2

    def send_all() -> None:
        for _ in range(CRAFTED_ROUNDS):
            for name, data in shapes.items():
                if stop.is_set() or time.monotonic() > deadline:
                    return
                seen[name].append(send_crafted(served, data))

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    try:
        yield seen
    finally:
        sender.join(timeout=ABUSE_LIMIT_S * 2)
        stop.set()


def describe(seen: dict[str, list[Refusal]]) -> str:
    parts = []
    for name, refusals in seen.items():
        outcomes = Counter(f"{r.statuses or 'none'}/{r.ended}" for r in refusals)
        slowest = max((r.seconds for r in refusals), default=math.nan)
        parts.append(f"{name}: {dict(outcomes)} slowest {slowest:.2f} s")
    return "; ".join(parts)


# -- 4. giant and numerous headers ---------------------------------------------------------------

GIANT_HEADS = {
    "one 1 MB header": b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\nX-Big: "
    + b"a" * (1024 * 1024)
    + b"\r\n\r\n",
    "10,000 headers": b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n"
    + b"".join(b"X-H%d: 1\r\n" % number for number in range(10_000))
    + b"\r\n",
}


def test_giant_and_numerous_headers_are_refused_quickly(served: Served) -> None:
    before = server_memory(served)
    with crafted_in_background(served, GIANT_HEADS) as seen:
        result = measure(served, "1 MB header; 10,000 headers", lambda: describe(seen))
    grown = server_memory(served) - before
    print(f"resident memory of the server: {before / 2**20:.0f} MiB, then grew by {grown / 2**20:.1f} MiB")
    for name, refusals in seen.items():
        assert refusals, f"{name}: none sent"
        for refusal in refusals:
            # A server that refuses before reading everything may reset the connection on the rest.
            assert refusal.statuses in ([431], [400], []), f"{name}: {refusal}"
            assert refusal.ended != "open", f"{name}: the connection was left open: {refusal}"
            assert refusal.seconds < 2.0, f"{name}: refused too slowly: {refusal}"
    assert grown < MAX_GROWTH_BYTES
    assert_all_answered(result)
    still_serving(served)


# -- 5. request smuggling ------------------------------------------------------------------------


def _smuggling_shapes() -> dict[str, bytes]:
    post = b"POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    chunked_then_hidden = b"0\r\n\r\n" + HIDDEN
    return {
        # Read by Content-Length, the hidden request is body; read as chunked, it is a second request.
        "Content-Length and chunked": post
        + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(chunked_then_hidden)
        + chunked_then_hidden,
        "two Content-Lengths": post
        + b"Content-Length: 0\r\nContent-Length: %d\r\n\r\n" % len(HIDDEN)
        + HIDDEN,
        "chunked, identity": post + b"Transfer-Encoding: chunked, identity\r\n\r\n" + chunked_then_hidden,
        "garbage chunk size": post + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n" + HIDDEN,
    }


SMUGGLING = _smuggling_shapes()


def test_the_answer_counting_sees_a_pipelined_request(served: Served) -> None:
    """The control for the smuggling test: two well-framed requests in one send get two answers."""
    live = b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n"
    closing = b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    assert send_crafted(served, live + closing).statuses == [200, 200]


def test_smuggling_shapes_are_refused_and_never_read_as_two_requests(served: Served) -> None:
    with crafted_in_background(served, SMUGGLING) as seen:
        result = measure(served, "smuggling shapes", lambda: describe(seen))
    for name, refusals in seen.items():
        assert refusals, f"{name}: none sent"
        for refusal in refusals:
            # Refused with a 400, or the connection closed; never a second answer.
            assert refusal.statuses in ([400], []), f"{name}: {refusal}"
            assert refusal.ended != "open", f"{name}: the connection was left open: {refusal}"
    assert_all_answered(result)
    still_serving(served)


# -- 6. absurd methods ---------------------------------------------------------------------------


def _method_shapes(served: Served) -> dict[str, bytes]:
    host, port = served.address
    authority = b"%s:%d" % (host.encode(), port)
    tail = b" /predict HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    return {
        "FOO": b"FOO" + tail,
        "10 KB method": b"M" * 10_240 + tail,
        "CONNECT": b"CONNECT %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (authority, authority),
        "TRACE": b"TRACE" + tail,
    }


def test_absurd_methods_are_refused_never_with_a_500(served: Served) -> None:
    with crafted_in_background(served, _method_shapes(served)) as seen:
        result = measure(served, "absurd methods", lambda: describe(seen))
    for name, refusals in seen.items():
        assert refusals, f"{name}: none sent"
        for refusal in refusals:
            assert len(refusal.statuses) <= 1, f"{name}: {refusal}"
            assert set(refusal.statuses) <= {400, 405, 501}, f"{name}: {refusal}"
    assert_all_answered(result)
    still_serving(served)
