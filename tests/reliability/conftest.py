"""Fixtures for the reliability tests: real ``flaskserve serve`` processes (see ``tests/live_server.py``).

``start_server(*flags, workers=2, ...)`` starts one on a free port and returns a
``RunningServer`` once it is ready; every server a test started is stopped when
the test ends. Mark the tests ``e2e``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flaskserve import testing
from live_server import RunningServer, ServerLauncher


@pytest.fixture
def start_server(repository: Path, tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    launcher = ServerLauncher(repository, tmp_path)
    yield launcher.start
    launcher.stop_all()


#: A Python model that sleeps as many seconds as its one feature says (stop and drain tests).
SLOW_MODEL = """
import time


class Model:
    feature_names_in_ = ["seconds"]

    def predict(self, features):
        time.sleep(float(features[0][0]))
        return features[:, 0]
"""


@pytest.fixture(scope="module")
def slow_repository(tmp_path_factory: pytest.TempPathFactory, linear_xy: Any) -> Path:
    """The linear model, and ``slow``: a Python model that sleeps as many seconds as its one feature says."""
    root = testing.write_repository(
        tmp_path_factory.mktemp("slow-repository"), {"linear": {"1": (linear_xy, ".skops")}}
    )
    (root / "slow" / "1").mkdir(parents=True)
    (root / "slow" / "1" / "model.py").write_text(SLOW_MODEL, encoding="utf-8")
    return root
