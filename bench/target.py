"""A target: one server of the line-up together with the request it is measured with.

Bringing a target up means starting its process, waiting until it is ready, and then checking
that the benchmark request itself gets a real answer (:func:`verify`): a server that answers
every request with an error would otherwise look fast.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from process import ServerError, ServerProcess, http
from progress import say
from servers import Server

from models import BenchModel


@dataclass(frozen=True)
class Request:
    """A request other than the server's one-row body: a large JSON body, a binary tensor."""

    path: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    """Sent besides ``Content-Type: application/json``, which they may replace."""
    answer_key: str = "prediction"
    """The key of the JSON answer that holds the predictions."""


@dataclass(frozen=True)
class Target:
    """A server plus the request it is measured with; ``model`` is None for the no-model apps.

    The request is the server's own one-row body for ``model`` unless ``request`` gives another,
    carrying ``rows`` rows.
    """

    server: Server
    model: BenchModel | None
    rows: int = 1
    request: Request | None = None

    @property
    def key(self) -> str:
        return self.server.key

    @property
    def url(self) -> str:
        path = self.request.path if self.request else self.server.predict_path
        return self.server.base_url + path

    @property
    def body(self) -> bytes:
        return self.request.body if self.request else self.server.body_for(self.model)

    @property
    def headers(self) -> Mapping[str, str]:
        return self.request.headers if self.request else {}

    @property
    def label(self) -> str:
        return f"{self.server.name} ({self.server.settings})"

    def process(self, logs: Path) -> ServerProcess:
        """A process for this target's server, not started yet, logging to ``logs/<key>.log``."""
        server = self.server
        return ServerProcess(
            server.key, server.argv, env=server.env, cwd=server.cwd, log_path=logs / f"{server.key}.log"
        )


def wait_ready(target: Target, process: ServerProcess) -> None:
    """Waits until the server answers its readiness probe, or the benchmark request if it has none."""
    server = target.server
    if server.ready_path is not None:
        process.wait_ready(server.base_url + server.ready_path)
    else:
        process.wait_ready(target.url, method="POST", body=target.body, headers=target.headers)


def verify(target: Target) -> None:
    """Fails unless the benchmark request gets a 200 with a prediction in it.

    Without this a server answering 4xx to a malformed body would look fast: wrk would count
    its errors, but a quick reader of the table might not.
    """
    reply = http("POST", target.url, target.body, timeout=30, headers=target.headers)
    text = reply.body.decode(errors="replace")
    if reply.status != 200:
        raise ServerError(f"benchmark request got HTTP {reply.status}: {text[:300]}")
    answer = json.loads(text)
    expected = target.request.answer_key if target.request else target.server.answer_key
    if expected is None:
        if not isinstance(answer, list) or not answer:
            raise ServerError(f"benchmark request got no list of predictions: {text[:300]}")
    elif not any(key.startswith(expected) for key in answer):
        raise ServerError(f"benchmark request got no {expected!r}: {text[:300]}")


def bring_up(target: Target, process: ServerProcess) -> None:
    """Waits for an already started ``process`` and checks its answer; raises :class:`ServerError`."""
    wait_ready(target, process)
    verify(target)


def start_all(targets: Sequence[Target], logs: Path, processes: list[ServerProcess]) -> list[Target]:
    """Starts every target's server, waits for all, and returns those that answer correctly.

    All start at once because model loading and MLServer's worker start-up overlap well, and
    idle servers take no measurable CPU from the one under load.  Each process is appended to
    ``processes`` as soon as it starts, so that the caller can stop it whatever happens next;
    a target that fails is stopped here and left out.
    """
    started = []
    for target in targets:
        process = target.process(logs)
        process.start()
        processes.append(process)
        started.append((target, process))
    ready = []
    for target, process in started:
        try:
            bring_up(target, process)
        except (ServerError, OSError) as error:
            say(f"  ✗ {target.label}: {error}")
            process.stop()
            continue
        say(f"  ✓ {target.label} on port {target.server.port}")
        ready.append(target)
    return ready
