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
after it was serving (the OOM killer, an operator, a model that crashes its
process) would then take every other worker down with it, where gunicorn
respawns it. This master tells the two deaths apart by whether the worker ever
became ready: each worker reports, through a pipe it inherits, once its app is
loaded (:meth:`GranianMaster.report_ready`). A worker that dies after that is
always respawned; a worker slot whose workers died before that
:data:`BOOT_FAILURES_TO_STOP` times in a row cannot start (a port taken, a
broken configuration) and the server stops, exit status 1, saying so.

granian on Linux has each worker open a listening socket of its own on the port
(``SO_REUSEPORT``), and the kernel queues each new connection at one of them
before any worker accepts it: the connections queued at a worker that is killed
are reset with it (unless ``net.ipv4.tcp_migrate_req`` is set). This master
opens one listening socket itself and its workers inherit it, as gunicorn's do:
a connection waits in that one queue until a living worker accepts it, and
the port stays open while every worker is being replaced.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import struct
import threading
import time
from typing import Any

from granian.server.mp import MPServer

from flaskserve.lifecycle.draining import DrainMarker
from flaskserve.serving.signals import QUICK_TIMEOUT_S, quit_now

log = logging.getLogger("flaskserve.serving")

#: Workers of one slot that died in a row before they were ready: the server cannot start them, and stops.
BOOT_FAILURES_TO_STOP = 3
_PID = struct.Struct("=i")


class _ReadyPipe:
    """Workers write their pid here once ready; the master reads which ones were, when one dies.

    A pid is a few bytes, written at once (far below ``PIPE_BUF``), so the
    workers' writes never mix. Neither end ever blocks: the master reads what is
    there, and a worker whose write finds the pipe full (the master read nothing
    for thousands of ready workers) is taken for one that was never ready.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        os.set_inheritable(self._write, True)
        self._ready: set[int] = set()

    def report(self, pid: int) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._write, _PID.pack(pid))

    def was_ready(self, pid: int | None, workers: set[int | None]) -> bool:
        """Whether ``pid`` reported; forgets the pids not in ``workers`` (the master's current ones)."""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._read, _PID.size * 1024):
                self._ready.update(reported for (reported,) in _PID.iter_unpack(chunk))
        ready = pid in self._ready
        self._ready &= workers - {pid}
        return ready


class _DeathRule(dict[int, float]):
    """Stands in for granian's record of respawn times, which its crash-loop rule reads.

    granian asks ``get(slot, 0)`` of every slot whose worker died, and stops the
    server when the answer is less than 5.5 s ago. This record answers from what
    the dead worker had done instead: the default (respawn) for a worker that had
    been ready, the time now (stop) once :data:`BOOT_FAILURES_TO_STOP` workers of
    the slot in a row died before they were ready. granian writes and clears the
    record as before; its times are not read.
    """

    def __init__(self, master: GranianMaster) -> None:
        super().__init__()
        self._master = master
        self._boot_failures: dict[int, int] = {}

    def get(self, slot: int, default: Any = None) -> Any:
        worker = self._master.wrks[slot].inner
        pid, how = worker.pid, _how_it_ended(worker.exitcode)
        if self._master.ready.was_ready(pid, {wrk.inner.pid for wrk in self._master.wrks}):
            self._boot_failures[slot] = 0
            log.warning(
                "worker died while serving; replacing it",
                extra={"worker": slot + 1, "worker_pid": pid, "how": how},
            )
            return default
        failures = self._boot_failures[slot] = self._boot_failures.get(slot, 0) + 1
        if failures < BOOT_FAILURES_TO_STOP:
            log.error(
                "worker died before it was ready; trying again",
                extra={"worker": slot + 1, "worker_pid": pid, "how": how, "failures": failures},
            )
            return default
        log.error(
            "workers cannot start: the last ones died before they were ready; stopping the server",
            extra={"worker": slot + 1, "worker_pid": pid, "how": how, "failures": failures},
        )
        return time.monotonic()


def _how_it_ended(exitcode: int | None) -> str:
    """``multiprocessing``'s exit code in words: a negative one is the signal that ended the process."""
    if exitcode is None or exitcode >= 0:
        return f"exit status {exitcode}"
    try:
        return f"killed by {signal.Signals(-exitcode).name}"
    except ValueError:
        return f"killed by signal {-exitcode}"


class GranianMaster(MPServer):
    """granian's multi-process server with gunicorn's meaning of the stop signals."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._master_pid: int | None = None
        self.ready = _ReadyPipe()
        self.respawned_wrks = _DeathRule(self)
        #: The replica drain on ``TERM`` (lifecycle/draining.py); set before ``serve``.
        self.drain = DrainMarker()
        self.drain_delay_s = 0.0
        self._draining = False

    def report_ready(self) -> None:
        """Called in a worker once its app is loaded: from now on its death is not a failed start."""
        self.ready.report(os.getpid())
        log.info("worker ready", extra={"worker_pid": os.getpid()})

    def _init_shared_socket(self) -> None:
        """One listening socket, opened here and inherited by the workers (module docstring)."""
        super()._init_shared_socket()  # type: ignore[no-untyped-call]
        if self._ssp is None or self.bind_uds:
            return  # granian shares one socket already (not Linux, or a Unix socket)
        self._shd = self._ssp.build()
        self._sfd = self._shd.get_fd()
        self._ssp = None
        self._sso = socket.socket(fileno=self._sfd)
        self._sso.set_inheritable(True)

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
