"""granian's master process, stopping as :mod:`flaskserve.serving.signals` says (imported only with granian).

granian's own master treats ``INT`` like ``TERM`` and has no ``QUIT`` handler, so
``QUIT`` killed the master alone and left its workers serving, orphaned, for as
long as the machine ran. This master keeps ``TERM`` graceful (granian's stop,
bounded by ``workers_kill_timeout``) and makes ``INT`` and ``QUIT`` quick: every
worker is sent ``QUIT``, which ends it at once (the workers take their signals
over with :func:`~flaskserve.serving.signals.take_over_worker_signals`), and one
that is still there after ``QUICK_TIMEOUT_S`` is killed.

granian's master also stops the whole server when a worker it respawned dies
again within 5.5 s, taking that for a crash loop. A worker killed from outside
(the OOM killer, an operator, a model that crashes its process) would then take
every other worker down with it, where gunicorn respawns it. This master
respawns such a worker until :data:`CRASH_LOOP_DEATHS` of them in a row died
that quickly — a worker that cannot even start still stops the server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from typing import Any

from granian.server.mp import MPServer

from flaskserve.lifecycle.draining import DrainMarker
from flaskserve.serving.signals import QUICK_TIMEOUT_S, quit_now

log = logging.getLogger("flaskserve.serving")

#: Quick deaths in a row of one worker slot (each within granian's 5.5 s of its respawn) that stop the server.
CRASH_LOOP_DEATHS = 5
#: granian's own window: a worker that dies this soon after its respawn counts as a quick death.
_QUICK_DEATH_S = 5.5


class _RespawnTimes(dict[int, float]):
    """granian's record of when each worker slot was respawned, shown to its crash-loop rule leniently.

    granian asks ``get(slot, 0)`` of every slot whose worker died, and stops the
    server when the answer is less than 5.5 s ago. This record answers the real
    time only once the slot has died that quickly :data:`CRASH_LOOP_DEATHS` times
    in a row; before that it answers the default, and granian respawns. granian
    clears the record after each respawn; the counts of quick deaths survive that.
    """

    def __init__(self) -> None:
        super().__init__()
        self._quick_deaths: dict[int, int] = {}

    def get(self, slot: int, default: Any = None) -> Any:
        respawned = super().get(slot)
        if respawned is None:
            return default
        quick = time.monotonic() - respawned <= _QUICK_DEATH_S
        deaths = self._quick_deaths[slot] = self._quick_deaths.get(slot, 0) + 1 if quick else 0
        if deaths < CRASH_LOOP_DEATHS:
            return default
        log.error("worker keeps dying right after it starts; stopping", extra={"worker": slot + 1})
        return respawned


class GranianMaster(MPServer):
    """granian's multi-process server with gunicorn's meaning of the stop signals."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._master_pid: int | None = None
        self.respawned_wrks = _RespawnTimes()
        #: The replica drain on ``TERM`` (lifecycle/draining.py); set before ``serve``.
        self.drain = DrainMarker()
        self.drain_delay_s = 0.0
        self._draining = False

    def startup(self, spawn_target: Any, target_loader: Any) -> None:
        self._master_pid = os.getpid()
        # QUIT first, as granian leaves it alone; granian's startup sets INT to its graceful stop.
        signal.signal(signal.SIGQUIT, self._stop_quickly)
        super().startup(spawn_target, target_loader)  # type: ignore[no-untyped-call]
        signal.signal(signal.SIGINT, self._stop_quickly)
        signal.signal(signal.SIGTERM, self._drain_then_stop)

    def _drain_then_stop(self, signum: int, _frame: Any) -> None:
        """``TERM``: readiness 503 and requests served for ``drain_delay_s``, then granian's graceful stop.

        A second ``TERM`` stops at once, gracefully.
        """
        if os.getpid() != self._master_pid or self._draining or self.drain_delay_s <= 0:
            self.signal_handler_interrupt()  # type: ignore[no-untyped-call]
            return
        self._draining = True
        self.drain.begin()
        log.info(
            "draining: readiness answers 503; stopping after the drain delay",
            extra={"drain_delay_s": self.drain_delay_s},
        )
        timer = threading.Timer(self.drain_delay_s, self.signal_handler_interrupt)
        timer.daemon = True
        timer.start()

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
