"""The audit log: who changed what the server serves, and which file it was.

Every admin action (loading or unloading a model through the API) is one record on
the ``flaskserve.audit`` logger, so an operator can send these records somewhere
other than the request log and keep them longer. A record names the actor (the API
key's name; ``operator`` for what the server does at start-up), the action, the model
and version, the outcome and, when a file was read, its SHA-256, which identifies
exactly which bytes were loaded even if the file is replaced later.

Start-up loads and refusals are logged where the models load
(``flaskserve.models``: ``model loaded`` and ``model refused``), with the same digest.
"""

from __future__ import annotations

import logging
from typing import Literal

from flask import g, has_request_context

__all__ = ["AUDIT_LOGGER", "OPERATOR", "Outcome", "actor", "record"]

AUDIT_LOGGER = "flaskserve.audit"
#: The actor of what the server does on its own behalf: start-up loads, command-line tools.
OPERATOR = "operator"
#: The actor of a request that no key authenticated (a server without keys).
ANONYMOUS = "anonymous"

Outcome = Literal["ok", "refused", "failed"]

log = logging.getLogger(AUDIT_LOGGER)


def actor() -> str:
    """Who the current action is done for: the request's key name, ``anonymous``, or ``operator``."""
    if not has_request_context():
        return OPERATOR
    name = g.get("api_key_name")
    return str(name) if name else ANONYMOUS


def record(
    action: str,
    *,
    model: str,
    version: str | None = None,
    sha256: str | None = None,
    outcome: Outcome = "ok",
    reason: str | None = None,
) -> None:
    """Write one audit record for ``action`` (e.g. ``load``, ``unload``) on ``model``.

    Call it once the outcome is known, also when the action failed or was refused:
    a refused attempt is what an audit is most often read for. Refusals and failures
    are logged as warnings, so they stand out at the default level.
    """
    fields: dict[str, str] = {"actor": actor(), "action": action, "model": model, "outcome": outcome}
    if version is not None:
        fields["version"] = version
    if sha256 is not None:
        fields["sha256"] = sha256
    if reason is not None:
        fields["reason"] = reason
    level = logging.INFO if outcome == "ok" else logging.WARNING
    log.log(level, f"model {action} {outcome}", extra=fields)
