"""granian's master process, stopping as :mod:`flaskserve.serving.signals` says (imported only with granian).

granian's own master treats ``INT`` like ``TERM`` and has no ``QUIT`` handler, so
``QUIT`` killed the master alone and left its workers serving, orphaned, for as
long as the machine ran. This master keeps ``TERM`` graceful (granian's stop,
bounded by ``workers_kill_timeout``) and makes ``INT`` and ``QUIT`` quick: every
worker is sent ``QUIT``, which ends it at once (the workers take their signals
over with :func:`~flaskserve.serving.signals.take_over_worker_signals`), and one
that is still there after ``QUICK_TIMEOUT_S`` is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from typing import Any

from granian.server.mp import MPServer

from flaskserve.serving.signals import QUICK_TIMEOUT_S, quit_now

log = logging.getLogger("flaskserve.serving")


class GranianMaster(MPServer):
    """granian's multi-process server with gunicorn's meaning of the stop signals."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._master_pid: int | None = None

    def startup(self, spawn_target: Any, target_loader: Any) -> None:
        self._master_pid = os.getpid()
        # QUIT first, as granian leaves it alone; granian's startup sets INT to its graceful stop.
        signal.signal(signal.SIGQUIT, self._stop_quickly)
        super().startup(spawn_target, target_loader)  # type: ignore[no-untyped-call]
        signal.signal(signal.SIGINT, self._stop_quickly)

    def _stop_quickly(self, signum: int, _frame: Any) -> None:
        if os.getpid() != self._master_pid:
            # A worker just forked, that has not taken over its signals yet: the quick stop is its own.
            quit_now(signum)
        log.info("quick shutdown", extra={"signal": signal.Signals(signum).name})
        self.workers_kill_timeout = QUICK_TIMEOUT_S
        for worker in self.wrks:
            # The master asked for this exit: granian must not report it as a crash, nor respawn.
            worker.interrupt_by_parent = True
            if worker.inner.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.inner.pid, signal.SIGQUIT)
        self.signal_handler_interrupt()  # type: ignore[no-untyped-call]
