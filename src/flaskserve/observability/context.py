"""What one request is about, noted by the views and read by logs and metrics.

Every protocol parses its own URL and body, so only the view knows which model,
version and method a request ended up using and how many rows it carried. Views
say so with :func:`note`; the request tracker reads the notes after the response
is built, to write the access log line and count the request. Notes live on
:data:`flask.g`, so they vanish with the request and never leak into the next.

The request id lives here too: it is accepted from the client's ``X-Request-ID``
when it is a short token of safe characters (so it can be copied into logs and
headers verbatim), and generated otherwise. A request served without Flask (the
prediction lane) binds its id with :func:`bind_request_id` instead, so log
records written while it is handled carry it just the same.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token
from dataclasses import dataclass

from flask import g, has_request_context

__all__ = [
    "REQUEST_ID_HEADER",
    "RequestNotes",
    "accept_request_id",
    "bind_request_id",
    "current_request_id",
    "note",
    "notes",
    "unbind_request_id",
]

#: The header that carries the request id, in both directions.
REQUEST_ID_HEADER = "X-Request-ID"

# Safe in a header, a log line and a shell: no spaces, quotes or control characters.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_NOTES_KEY = "flaskserve_notes"
_REQUEST_ID_KEY = "request_id"
#: The id of a request served outside Flask's request context, in the thread (or task) serving it.
_BOUND_REQUEST_ID: ContextVar[str | None] = ContextVar("flaskserve_request_id", default=None)


@dataclass
class RequestNotes:
    """The facts a view knows about its request; ``None`` means "not said"."""

    model: str | None = None
    version: str | None = None
    method: str | None = None
    rows: int | None = None
    protocol: str | None = None
    cache_hit: bool | None = None
    batch_rows: int | None = None


def note(
    *,
    model: str | None = None,
    version: str | None = None,
    method: str | None = None,
    rows: int | None = None,
    protocol: str | None = None,
    cache_hit: bool | None = None,
    batch_rows: int | None = None,
) -> None:
    """Record facts about the current request for its log line and metrics.

    Call it as soon as a fact is known (after resolving the model, after decoding,
    after predicting), so that a request that fails half-way is still counted
    against the right model. Arguments left at ``None`` keep what an earlier call
    said. Outside a request (a batch thread, a CLI command) it does nothing.
    """
    if not has_request_context():
        return
    current = notes()
    given = {
        "model": model,
        "version": version,
        "method": method,
        "rows": rows,
        "protocol": protocol,
        "cache_hit": cache_hit,
        "batch_rows": batch_rows,
    }
    for key, value in given.items():
        if value is not None:
            setattr(current, key, value)


def notes() -> RequestNotes:
    """The notes of the current request (empty ones if no view has spoken yet)."""
    current: RequestNotes | None = g.get(_NOTES_KEY)
    if current is None:
        current = RequestNotes()
        setattr(g, _NOTES_KEY, current)
    return current


def accept_request_id(given: str | None) -> str:
    """The client's request id if it is safe to echo, else a fresh one."""
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    """The id of the request being handled, or ``None`` outside a request."""
    if not has_request_context():
        return _BOUND_REQUEST_ID.get()
    request_id: str | None = g.get(_REQUEST_ID_KEY)
    return request_id


def set_request_id(request_id: str) -> None:
    g.request_id = request_id


def bind_request_id(request_id: str) -> Token[str | None]:
    """Make ``request_id`` current for a request served without Flask; undo with :func:`unbind_request_id`."""
    return _BOUND_REQUEST_ID.set(request_id)


def unbind_request_id(token: Token[str | None]) -> None:
    _BOUND_REQUEST_ID.reset(token)
