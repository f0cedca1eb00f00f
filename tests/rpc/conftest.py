"""Fixtures for the gRPC tests: an app's gRPC server in this process, and stubs that call it.

``grpc_server(**settings)`` builds an app from the test repository (as the
``make_settings`` fixture does) and starts its gRPC server on a free port, as a
worker of ``flaskserve serve`` does; it returns the app and a stub of the
inference service. Every server is stopped when its test ends. Tests that need
``flaskserve serve`` itself are in ``tests/e2e/test_grpc_e2e.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from flask import Flask

from flaskserve.app import create_app
from flaskserve.rpc import grpc_parts
from flaskserve.rpc.proto import grpc_predict_v2_pb2_grpc as pb_grpc
from flaskserve.rpc.server import GrpcServer, build_server
from flaskserve.security.tls import ServerTLS
from flaskserve.settings import Settings


@dataclass
class ServedOverGrpc:
    app: Flask
    server: GrpcServer
    channel: grpc.Channel
    stub: pb_grpc.GRPCInferenceServiceStub

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@pytest.fixture
def grpc_server(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., ServedOverGrpc]]:
    started: list[ServedOverGrpc] = []

    def start(tls: ServerTLS | None = None, **overrides: Any) -> ServedOverGrpc:
        settings = make_settings(**overrides)
        protocols, _ = grpc_parts(settings)
        app = create_app(settings, protocols=protocols)
        server = build_server(app, settings, tls, 0)
        # Over TLS this channel is refused; the TLS tests open their own to ``server.port``.
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        served = ServedOverGrpc(app, server, channel, pb_grpc.GRPCInferenceServiceStub(channel))
        started.append(served)
        return served

    yield start
    for served in started:
        served.channel.close()
        served.server.stop(0)
