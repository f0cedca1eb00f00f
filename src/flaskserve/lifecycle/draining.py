"""What a server does between being told to stop and stopping: drain the replica, retire connections.

**Draining the replica** (``TERM`` to the master, with ``drain_delay_s`` > 0). A
load balancer or Kubernetes goes on sending requests to a replica for a while
after it is told to stop: until its readiness probe fails, or until the endpoint
removal reaches every proxy. A replica that stops accepting at once refuses
those requests. So the master first writes the :class:`DrainMarker` in the run
directory, which turns readiness (``/v2/health/ready``, ``/readyz``, ``/ping``)
to 503 in every worker from the next probe on, keeps serving for
``drain_delay_s``, and only then begins the graceful stop (requests in progress
finish, then exit 0). ``HUP`` replaces workers without draining: the replica
stays ready.

**Retiring a stopping worker's connections** (granian). granian's graceful stop
closes every kept-alive connection that is idle at that moment. A client that
sent its next request on one just then finds the connection closed without an
answer (``RemoteDisconnected``): 5 of 14,139 requests in two runs of six
``HUP``\\ s with eight closed-loop clients (docs/operations.md). A granian worker told to stop
therefore first answers for :data:`RETIRE_S` with ``Connection: close``
(:func:`close_connections_when_due`), so that its clients learn from an
answer, not from a closed socket, to open new connections, which the other
workers (or, after a ``HUP``, the new ones) take; then granian's stop proceeds.
The worker still accepts meanwhile (granian cannot be told to stop accepting
from Python), so a connection accepted just before the stop can still be closed
unread: clients that open a new connection for every request remain exposed.
gunicorn's workers (:mod:`flaskserve.serving.gthread`) stop accepting, answer
the next request on every connection they hold with ``Connection: close``, and
keep such connections open for a moment for it, just-accepted ones included.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flaskserve.lifecycle.rebalancing import closing_connections

__all__ = [
    "DRAIN_FILE",
    "RETIRE_S",
    "DrainMarker",
    "close_connections_when_due",
    "retire_connections",
]

#: The marker's name in the run directory.
DRAIN_FILE = "draining"
#: How long a stopping granian worker answers with ``Connection: close`` before granian's stop closes
#: the connections left idle. A closed-loop client sends its next request within milliseconds.
RETIRE_S = 1.0

_retiring = threading.Event()


@dataclass(frozen=True)
class DrainMarker:
    """The run directory's file that says the replica is draining; no path (no run directory): never."""

    path: Path | None = None

    def begin(self) -> None:
        """Turn every worker's readiness to 503 from its next probe on."""
        if self.path is not None:
            self.path.touch()

    @property
    def draining(self) -> bool:
        return self.path is not None and self.path.exists()


def retire_connections() -> None:
    """From now on, this process's answers close their connections (the middleware below)."""
    _retiring.set()


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def close_connections_when_due(app: WsgiApp) -> WsgiApp:
    """``app``, whose answers carry ``Connection: close`` while this process retires its connections,
    and for a moment after another worker joins (:mod:`flaskserve.lifecycle.rebalancing`).

    PEP 3333 leaves hop-by-hop headers to the server; granian passes the header to
    its HTTP layer, which closes the connection after the answer. (gunicorn drops it:
    its worker asks :func:`~flaskserve.lifecycle.rebalancing.closing_connections` itself.)
    """

    def closing(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not (_retiring.is_set() or closing_connections()):
            return app(environ, start_response)

        def start_closing(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            headers = [(n, v) for n, v in headers if n.lower() != "connection"]
            return start_response(status, [*headers, ("Connection", "close")], *exc_info)

        return app(environ, start_closing)

    return closing
