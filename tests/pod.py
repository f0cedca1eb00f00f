"""A pod's network for the deploy tests: a namespace of its own, where a server may bind 0.0.0.0 on its port.

The namespace helpers live with the fleet test (``tests/fleet/network.py``);
:func:`pod_network` makes them importable for as long as it runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

FLEET = str(Path(__file__).parent / "fleet")


@contextmanager
def pod_network(tag: str) -> Iterator[Any]:
    """One network namespace (a pod's); skips the test where namespaces cannot be made."""
    sys.path.insert(0, FLEET)
    try:
        from network import Network, why_namespaces_cannot_be_made

        reason = why_namespaces_cannot_be_made()
        if reason is not None:
            pytest.skip(reason)
        with Network(tag=f"{tag}{os.getpid() % 10000}") as network:
            yield network.add_host("p")
    finally:
        sys.path.remove(FLEET)


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, path: str = "/v2/health/ready") -> None:
    """Until ``url + path`` answers 200; fails with the server's log if it exits or takes over 60 s."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the pod's command exited with {process.returncode}:\n{log.read_text()}")
        try:
            if requests.get(url + path, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    pytest.fail(f"the pod's command was not ready in 60 s:\n{log.read_text()}")
