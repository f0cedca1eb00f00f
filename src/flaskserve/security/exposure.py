"""Who can reach the server: refuse to serve a network without API keys unless told to.

A server bound to a loopback address is reachable from this machine only; bound to
any other address (``0.0.0.0`` above all), anyone who can route to it can predict,
read the model catalogue and, with admin routes, load models. Without keys every route
is open, so that combination needs the operator's explicit ``--insecure``; it is then
served, with a warning in the log.
"""

from __future__ import annotations

import ipaddress
import logging

from flaskserve.errors import ConfigError

__all__ = ["check_exposure", "is_loopback"]

log = logging.getLogger("flaskserve.security")

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server reachable from this machine only.

    A host name other than ``localhost`` counts as not loopback: what it resolves to
    can change, and guessing wrong would expose the server.
    """
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, *, key_count: int, insecure: bool) -> None:
    """Refuse a server on ``host`` that nobody can be kept out of, unless ``insecure`` says to go on."""
    if key_count > 0 or is_loopback(host):
        return
    if not insecure:
        raise ConfigError(
            f"refusing to serve on {host!r} without API keys: anyone who can reach it could use every route. "
            "Create a key with 'flaskserve keys create --name NAME --scope predict', "
            "bind to 127.0.0.1, or pass --insecure if the network itself is trusted"
        )
    log.warning(
        "serving on a non-loopback address without API keys (--insecure): every route is open",
        extra={"host": host},
    )
