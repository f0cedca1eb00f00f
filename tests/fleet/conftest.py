"""Fixtures of the fleet test: a network of namespaces, a repository of its own, and fleets on them.

Everything here needs root and ``ip netns``; where namespaces cannot be made, the
tests are skipped with the reason. ``FLEET_SECONDS`` sets how long each load runs
(short in CI; ``make fleet`` runs longer).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster import Fleet
from network import Network, why_namespaces_cannot_be_made

from flaskserve import testing
from nginx import NGINX


def _why_not() -> str | None:
    if shutil.which("redis-server") is None:
        return "the fleet test runs its own redis-server, which is not on PATH"
    if not Path(NGINX).exists():
        return f"the fleet test balances with Debian's nginx, and {NGINX} is missing (apt-get install nginx)"
    return why_namespaces_cannot_be_made()


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    reason = _why_not()
    if reason is not None:
        pytest.skip(reason)
    with Network() as made:
        yield made


@pytest.fixture(scope="module")
def fleet_repository(tmp_path_factory: pytest.TempPathFactory, iris_classifier: Any, linear_xy: Any) -> Path:
    """A repository of the fleet's own (tests drop versions into it): iris 1 and linear 1."""
    return testing.write_repository(
        tmp_path_factory.mktemp("fleet-repository"),
        {"iris": {"1": (iris_classifier, ".skops")}, "linear": {"1": (linear_xy, ".skops")}},
    )


@pytest.fixture(scope="module")
def make_fleet(network: Network, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Fleet]]:
    started: list[Fleet] = []

    def build(repository: Path, **options: Any) -> Fleet:
        made = Fleet(network, tmp_path_factory.mktemp("fleet"), repository, **options)
        started.append(made)
        made.start()
        return made

    yield build
    for made in started:
        made.close()
