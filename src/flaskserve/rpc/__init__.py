"""The Open Inference Protocol over gRPC (``pip install 'flaskserve[grpc]'``).

``inference.GRPCInferenceService`` beside the HTTP API, on ``--grpc-port``. A
call is not served by a second implementation: each RPC runs through the app's
own request pipeline as the request to its twin REST route (:mod:`.edge`), so
keys, scopes, rate limits, validation, limits, errors, request ids, logs,
metrics, the batcher and the cache are the HTTP edge's. The modules:

- ``proto/``: the ``.proto`` and the modules ``make grpc-generate`` makes from it;
- :mod:`.codec`: ``ModelInferRequest``/``ModelInferResponse`` as the protocol table's ``grpc`` entry;
- :mod:`.edge`: a call through the app, and the HTTP status → gRPC code mapping;
- :mod:`.servicer`: the RPCs, each a translation to and from its REST twin;
- :mod:`.server`: one server per worker, started after the fork, stopped when HTTP stops.

Importing this package imports no gRPC; :func:`grpc_parts` does, and says what
to install when it is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from flaskserve.errors import ConfigError

if TYPE_CHECKING:
    from flask import Flask

    from flaskserve.protocols.table import ProtocolTable
    from flaskserve.security.tls import ServerTLS
    from flaskserve.settings import Settings

__all__ = ["INSTALL_HINT", "grpc_parts"]

INSTALL_HINT = "pip install 'flaskserve[grpc]'"


def grpc_parts(
    settings: Settings,
) -> tuple[ProtocolTable, Callable[[Flask, ServerTLS | None], Callable[[], object]]]:
    """The protocol table with ``grpc`` entered, and a factory of each worker's start-up call.

    The start-up call is made in a worker, after the fork; see :mod:`.server`.
    """
    try:
        from flaskserve.protocols.table import default_protocols
        from flaskserve.rpc.codec import PROTOCOL
        from flaskserve.rpc.server import start_in_worker
    except ImportError:
        raise ConfigError(f"--grpc-port needs gRPC: {INSTALL_HINT}") from None

    protocols = default_protocols()
    protocols.register(PROTOCOL)

    def starter(app: Flask, tls: ServerTLS | None) -> Callable[[], object]:
        return lambda: start_in_worker(app, settings, tls)

    return protocols, starter
