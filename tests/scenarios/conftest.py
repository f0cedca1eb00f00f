"""The scenario tests' one fixture: a real socket for the examples' HTTP clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from flaskserve.app import create_app
from flaskserve.settings import Settings
from live_server import served_in_thread


@pytest.fixture
def serve() -> Iterator[Callable[[Settings], str]]:
    """Serve settings on a real socket (Werkzeug's threaded server), for the examples' HTTP clients."""
    with ExitStack() as servers:

        def start(settings: Settings) -> str:
            return "http://" + servers.enter_context(served_in_thread(create_app(settings)))

        yield start
