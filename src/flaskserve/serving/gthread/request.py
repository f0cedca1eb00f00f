"""gunicorn's parser and request handling, reading their settings once per worker rather than each request.

For each request, gunicorn's parser, request handling, environ and response
read about thirty settings, each through ``Config.__getattr__`` (a Python call
and two dictionary look-ups), and the parser parses the client's address
(``ipaddress.ip_address``) to tell whether it may set forwarding headers. Both
were a few percent of a hello-world request's CPU. A worker's settings are
fixed once it serves (a reload starts new workers): :class:`Settings` reads
each one the first time it is asked for and keeps it, and :class:`Request`
remembers the answer for each client address.

gunicorn's default ``pre_request`` hook logs each request's method and path at
debug level; a worker whose log is not at debug level has :class:`Settings`
give a hook that does nothing instead, so that the call into the logger (only
to find the line is not written) is not made for each request.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn import http
from gunicorn.config import PreRequest
from gunicorn.http.message import Request as GunicornRequest
from gunicorn.http.parser import RequestParser

__all__ = ["Request", "Settings", "request_parser", "settings_of"]

#: Client addresses whose trust is remembered; past this many, the memory starts over.
MAX_REMEMBERED_PEERS = 4096


class Settings:
    """A worker's gunicorn settings, each read from its ``Config`` once, the first time it is asked for."""

    def __init__(self, cfg: Any, *, logs_debug: bool = True) -> None:
        self._cfg = cfg
        #: Whether each client address may set forwarding headers (``forwarded_allow_ips``).
        self.trusted_peers: dict[str, bool] = {}
        if not logs_debug and cfg.pre_request is PreRequest.default:
            self.pre_request = _no_pre_request

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._cfg, name)
        setattr(self, name, value)
        return value


def settings_of(cfg: Any, log: Any) -> Settings:
    """The settings of a worker whose gunicorn logger is ``log`` (a logger class of gunicorn's, or not)."""
    error_log = getattr(log, "error_log", None)
    logs_debug = not isinstance(error_log, logging.Logger) or error_log.isEnabledFor(logging.DEBUG)
    return Settings(cfg, logs_debug=logs_debug)


def _no_pre_request(worker: Any, req: Any) -> None:
    """gunicorn's default ``pre_request`` hook under a log above debug level: nothing to do."""


class Request(GunicornRequest):  # type: ignore[misc]
    """gunicorn's request, its client's trust for forwarding headers remembered by address."""

    cfg: Settings

    def _peer_is_trusted_proxy(self) -> bool:
        peer = self.peer_addr
        if not isinstance(peer, tuple):
            return True
        remembered = self.cfg.trusted_peers
        trusted = remembered.get(peer[0])
        if trusted is None:
            trusted = bool(super()._peer_is_trusted_proxy())
            if len(remembered) >= MAX_REMEMBERED_PEERS:
                remembered.clear()
            remembered[peer[0]] = trusted
        return trusted


class _Parser(RequestParser):  # type: ignore[misc]
    mesg_class = Request


def request_parser(settings: Settings, source: Any, client: Any) -> Any:
    """The parser for a connection's requests: gunicorn's, with :class:`Request` for HTTP/1."""
    if settings.protocol != "http":
        return http.get_parser(settings, source, client)
    return _Parser(settings, source, client)
