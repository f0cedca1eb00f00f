"""Fixtures for the reliability tests: real ``flaskserve serve`` processes (see ``tests/live_server.py``).

``start_server(*flags, workers=2, ...)`` starts one on a free port and returns a
``RunningServer`` once it is ready; every server a test started is stopped when
the test ends. Mark the tests ``e2e``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from live_server import RunningServer, ServerLauncher


@pytest.fixture
def start_server(repository: Path, tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    launcher = ServerLauncher(repository, tmp_path)
    yield launcher.start
    launcher.stop_all()
