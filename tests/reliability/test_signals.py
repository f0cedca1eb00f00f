"""Stop signals mean the same under both servers, for the master and every worker.

TERM lets a request in progress finish and then everything exits; INT and QUIT
end everything at once, abandoning it; a worker whose master was killed stops
on its own. Each case starts a real two-worker ``flaskserve serve`` serving a
model that takes ``SLOW_S`` seconds to answer.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from flaskserve.serving.signals import GRACEFUL_TIMEOUT_S
from live_server import RunningServer, wait_until_gone

pytestmark = pytest.mark.e2e

#: How long the slow model takes to answer.
SLOW_S = 6.0
#: A quick stop must be over within this long of the signal, before the slow answer would be ready.
QUICK_STOP_S = 3.0
#: A worker whose master was killed must be gone within this long (it may linger 2 s for kept-alive clients).
ORPHAN_STOP_S = 8.0


class SlowRequest:
    """A prediction that takes ``SLOW_S`` seconds, made in a thread; ``outcome`` is its status or error."""

    def __init__(self, server: RunningServer) -> None:
        self.outcome: int | str | None = None
        self._thread = threading.Thread(target=self._make, args=(server.url,))
        self._thread.start()

    def _make(self, url: str) -> None:
        try:
            response = requests.post(
                url + "/models/slow/predict", json={"seconds": SLOW_S}, timeout=SLOW_S + 10
            )
        except requests.RequestException as error:
            self.outcome = type(error).__name__
        else:
            self.outcome = response.status_code

    def result(self) -> int | str | None:
        self._thread.join()
        return self.outcome


CASES = [
    pytest.param(server, sig, id=f"{server}-{sig.name}")
    for server in ("gunicorn", "granian")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
]


@pytest.mark.parametrize(("server_name", "stop_signal"), CASES)
def test_a_stop_signal_to_the_master_ends_it_and_every_worker(
    start_server: Callable[..., RunningServer],
    slow_repository: Path,
    server_name: str,
    stop_signal: signal.Signals,
) -> None:
    server = start_server("--server", server_name, "--allow-code", model_path=slow_repository, workers=2)
    workers = server.worker_pids(2)
    request = SlowRequest(server)
    time.sleep(1.5)  # the request is in a worker, asleep in the model

    signalled = time.monotonic()
    server.process.send_signal(stop_signal)
    survivors = wait_until_gone([server.process.pid, *workers], timeout=SLOW_S + 10)
    stopped_after = time.monotonic() - signalled

    assert survivors == {}, f"still running after {SLOW_S + 10:.0f} s: {survivors}"
    assert server.process.wait(timeout=5) == 0
    if stop_signal == signal.SIGTERM:
        assert request.result() == 200, "a graceful stop must let the request in progress finish"
        assert stopped_after < GRACEFUL_TIMEOUT_S, f"a graceful stop took {stopped_after:.1f} s"
    else:
        assert stopped_after < QUICK_STOP_S, f"a quick stop took {stopped_after:.1f} s"
        assert request.result() == "ConnectionError", "a quick stop abandons the request in progress"


@pytest.mark.parametrize("server_name", ["gunicorn", "granian"])
def test_workers_stop_on_their_own_when_their_master_is_killed(
    start_server: Callable[..., RunningServer], server_name: str
) -> None:
    server = start_server("--server", server_name, workers=2)
    workers = server.worker_pids(2)

    server.process.kill()
    server.process.wait(timeout=5)

    assert wait_until_gone(workers, timeout=ORPHAN_STOP_S) == {}
