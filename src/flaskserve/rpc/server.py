"""The gRPC server of one worker: started after the fork, sharing the port, drained as HTTP is.

gRPC's runtime starts threads and polling that do not survive a ``fork``, and
``flaskserve serve`` builds the app (and loads the models) in the master before
forking its workers. So the master never touches gRPC: each worker starts its
own server once it runs (:func:`start_in_worker`, called from gunicorn's
``post_worker_init`` hook and from granian's worker loader), and every worker
binds the same port with ``SO_REUSEPORT``, so the kernel spreads connections
over them as it spreads HTTP ones. A worker that dies is replaced by the
master, and its replacement binds the port again. Each worker's server answers
with that worker's app: its batcher, cache and metrics are the ones its HTTP
requests use.

The server uses the same address (and so the same public-bind refusal, made
when the app was built), the same certificate and client CA as HTTPS, the
body limit as the largest message, and as many threads as an HTTP worker. It
also serves ``grpc.health.v1.Health`` (for Kubernetes gRPC probes; open, like
the HTTP probes) and server reflection (which names the services and their
messages, nothing a client could not read in the published ``.proto``).

When the worker's graceful stop begins (``TERM``, as HTTP stops accepting), the
server tells health checkers ``NOT_SERVING`` and refuses new calls at once
(``UNAVAILABLE``: its port is closed; a call whose connection was taken in the
instant before the port closed is ``CANCELLED`` by the stopping server); the
calls in progress go on, and the worker waits for them at exit, within the
graceful timeout.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
from flask import Flask
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from flaskserve.errors import ConfigError
from flaskserve.rpc.servicer import SERVICE_NAME, InferenceServicer, method_handlers
from flaskserve.security.tls import ServerTLS
from flaskserve.serving.gunicorn import default_threads
from flaskserve.serving.signals import GRACEFUL_TIMEOUT_S, at_graceful_stop
from flaskserve.settings import Settings

__all__ = ["GrpcServer", "start_in_worker"]

log = logging.getLogger("flaskserve.serving")


class GrpcServer:
    """One started gRPC server and what stopping it takes."""

    def __init__(self, server: grpc.Server, health_servicer: health.HealthServicer, port: int) -> None:
        self._server = server
        self._health = health_servicer
        self.port = port
        self._stopping: threading.Event | None = None
        self._lock = threading.Lock()

    def begin_stop(self, grace_s: float = GRACEFUL_TIMEOUT_S) -> threading.Event:
        """Refuse new calls from now on and give those in progress ``grace_s``; returns at once.

        Health turns ``NOT_SERVING`` and the port closes; the event is set once the
        last call in progress has finished (or was cancelled at the end of the grace).
        Idempotent: a second call returns the first stop's event.
        """
        with self._lock:
            if self._stopping is None:
                self._health.enter_graceful_shutdown()
                self._stopping = self._server.stop(grace_s)
            return self._stopping

    def stop(self, grace_s: float = GRACEFUL_TIMEOUT_S) -> None:
        """Refuse new calls and wait up to ``grace_s`` for those in progress; idempotent."""
        self.begin_stop(grace_s).wait(grace_s + 1)


def build_server(app: Flask, settings: Settings, tls: ServerTLS | None, port: int) -> GrpcServer:
    """A started server for ``app`` on ``settings.host``:``port``; refuses a port it cannot bind."""
    threads = settings.threads or default_threads(settings)
    server = grpc.server(
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="flaskserve-grpc"),
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", settings.limits.max_body_bytes),
        ],
    )
    server.add_generic_rpc_handlers((method_handlers(InferenceServicer(app)),))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in ("", SERVICE_NAME):
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    host = settings.host
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        if tls is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, _credentials(tls))
    except RuntimeError as exc:
        raise ConfigError(f"cannot serve gRPC on {address}: {exc}") from None
    if bound == 0:
        raise ConfigError(f"cannot serve gRPC on {address}: the port is taken or the address is not local")
    server.start()
    return GrpcServer(server, health_servicer, bound)


def start_in_worker(app: Flask, settings: Settings, tls: ServerTLS | None) -> GrpcServer | None:
    """Start this worker's gRPC server if ``settings.grpc_port`` asks for one, and stop it at exit."""
    if settings.grpc_port is None:
        return None
    started = build_server(app, settings, tls, settings.grpc_port)
    # A graceful stop (TERM) refuses new calls at once, as HTTP does; exit waits for those in progress.
    at_graceful_stop(started.begin_stop)
    # gunicorn's workers leave through sys.exit (atexit runs); granian's are multiprocessing
    # children, which leave through os._exit after multiprocessing's own finalizers.
    atexit.register(started.stop)
    multiprocessing.util.Finalize(started, started.stop, exitpriority=100)
    log.info("serving gRPC", extra={"port": started.port, "tls": tls is not None})
    return started


def _credentials(tls: ServerTLS) -> grpc.ServerCredentials:
    key = tls.keyfile.read_bytes()
    certificate = tls.certfile.read_bytes()
    client_ca = tls.ca_certs.read_bytes() if tls.ca_certs is not None else None
    return grpc.ssl_server_credentials(
        [(key, certificate)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
