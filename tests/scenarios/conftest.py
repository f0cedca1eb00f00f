"""The scenario tests' one fixture: a real socket for the examples' HTTP clients."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server

from flaskserve.app import create_app
from flaskserve.settings import Settings


@pytest.fixture
def serve() -> Iterator[Callable[[Settings], str]]:
    """Serve settings on a real socket (Werkzeug's threaded server), for the examples' HTTP clients."""
    servers: list[tuple[Any, threading.Thread]] = []

    def start(settings: Settings) -> str:
        server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server, thread in servers:
        server.shutdown()
        thread.join()
        server.server_close()
