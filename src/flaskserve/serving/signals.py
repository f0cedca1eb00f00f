"""How a ``flaskserve serve`` stops: the same signals mean the same thing under gunicorn and granian.

=========  ============================================================================
``TERM``   Graceful. With a drain delay, the master first turns readiness to 503 and
           serves on for that long (:mod:`flaskserve.lifecycle.draining`). Then it
           stops accepting and tells its workers; each worker finishes the requests
           it has started and exits. A worker still busy after
           ``GRACEFUL_TIMEOUT_S`` is ended. Orchestrators send this one.
``INT``    Quick (Ctrl-C). Workers exit at once; requests in progress are abandoned.
``QUIT``   Quick, the same as ``INT``. A quick signal during a graceful stop turns it quick.
=========  ============================================================================

The signals mean the same sent to the master or to one worker (the master
replaces a worker that stopped on its own). A worker whose master is gone (killed
with ``KILL``) stops gracefully on its own within a second or so, so no worker
outlives its master. gunicorn's arbiter already keeps this contract for the
master; :mod:`flaskserve.serving.gthread` makes its workers' quick exit quick and
bounds their graceful one, and
:mod:`flaskserve.serving.granian_master` and :func:`take_over_worker_signals` give
granian the whole of it (granian alone treats ``INT`` as ``TERM``, and ``QUIT``
killed its master and left the workers serving).

A worker serves more than HTTP (its gRPC server): :func:`at_graceful_stop` has
the rest stop taking work at the moment HTTP does, whichever server runs it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import NoReturn

from flaskserve.observability.log_queue import drain_all

__all__ = [
    "GRACEFUL_TIMEOUT_S",
    "QUICK_SIGNALS",
    "QUICK_TIMEOUT_S",
    "at_graceful_stop",
    "end_after",
    "graceful_stop_begins",
    "quit_now",
    "take_over_worker_signals",
]

log = logging.getLogger("flaskserve.serving")

#: Longest a graceful stop waits for requests in progress before workers are killed.
GRACEFUL_TIMEOUT_S = 10
#: Longest granian's master waits for its workers to exit on a quick stop before it kills them
#: (gunicorn's arbiter allows the graceful timeout, but its workers exit at once too).
QUICK_TIMEOUT_S = 2
QUICK_SIGNALS = frozenset({signal.SIGINT, signal.SIGQUIT})
_STOP_SIGNALS = QUICK_SIGNALS | {signal.SIGTERM}
#: How often a worker checks that its master is still there.
ORPHAN_CHECK_INTERVAL_S = 0.5

_at_graceful_stop: list[Callable[[], object]] = []


def at_graceful_stop(begin_stopping: Callable[[], object]) -> None:
    """Have this worker call ``begin_stopping`` when its graceful stop begins.

    It is called once, from a signal handler, as the worker stops taking new HTTP
    requests: it must refuse new work and return at once, leaving the work in
    progress to finish (the worker exits once its HTTP requests are done; wait
    for the rest at exit).
    """
    _at_graceful_stop.append(begin_stopping)


def graceful_stop_begins() -> None:
    """Tell what :func:`at_graceful_stop` registered that the graceful stop has begun; once only."""
    while _at_graceful_stop:
        begin_stopping = _at_graceful_stop.pop()
        try:
            begin_stopping()
        except Exception:
            log.exception("stopping a part of the worker failed")


def quit_now(signum: int) -> NoReturn:
    """End this worker process at once: the quick stop. Requests in progress are abandoned."""
    log.info("worker quitting", extra={"signal": signal.Signals(signum).name})
    drain_all()  # os._exit skips atexit, where queued log lines are otherwise written
    os._exit(0)


def end_after(seconds: float) -> None:
    """End this worker process ``seconds`` from now if it is still running: the bound on a graceful stop.

    A graceful stop waits for the requests in progress; one stuck in a model call
    would hold the worker (and, at exit, the interpreter joining its threads) for ever.
    """
    threading.Thread(target=_end_later, args=(seconds,), name="flaskserve-stop-deadline", daemon=True).start()


def take_over_worker_signals(
    graceful_timeout_s: float = GRACEFUL_TIMEOUT_S, before_stop: Callable[[], object] | None = None
) -> None:
    """Give the calling worker process the stop signals' meaning and the orphan check; call it first.

    ``INT``, ``QUIT`` and ``TERM`` are blocked in this thread, and so in every
    thread it starts afterwards, and a thread of their own waits for them, so they
    act whatever the other threads are doing. ``INT`` and ``QUIT`` end the process
    at once, whatever handler the server installs for them later (granian's treats
    ``INT`` as a graceful stop). ``TERM`` is handed to the handler the server has
    installed for it by then (granian's graceful stop), and the process is ended
    ``graceful_timeout_s`` later if it is still there; ``before_stop``, when given,
    runs first (in a thread of its own, so that a quick signal still acts at once).
    Processes started from a worker inherit the blocked signals.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    threading.Thread(
        target=_serve_stop_signals,
        args=(graceful_timeout_s, before_stop),
        name="flaskserve-stop-signals",
        daemon=True,
    ).start()
    threading.Thread(
        target=_stop_when_orphaned, args=(os.getppid(),), name="flaskserve-orphan-check", daemon=True
    ).start()


def _serve_stop_signals(graceful_timeout_s: float, before_stop: Callable[[], object] | None) -> None:
    stopping = False
    while True:
        signum = signal.sigwait(_STOP_SIGNALS)
        if signum in QUICK_SIGNALS:
            quit_now(signum)
        server_handler = signal.getsignal(signal.SIGTERM)
        if not callable(server_handler):
            quit_now(signum)  # no graceful stop to hand it to
        if stopping:
            continue
        stopping = True
        end_after(graceful_timeout_s)
        threading.Thread(
            target=_stop_gracefully,
            args=(signum, server_handler, before_stop),
            name="flaskserve-graceful-stop",
            daemon=True,
        ).start()


def _stop_gracefully(
    signum: int, server_handler: Callable[[int, None], object], before_stop: Callable[[], object] | None
) -> None:
    # The worker's other servers (gRPC) refuse new calls at once; HTTP may first retire its connections.
    graceful_stop_begins()
    if before_stop is not None:
        before_stop()
    server_handler(signum, None)


def _end_later(seconds: float) -> None:
    time.sleep(seconds)
    log.warning("requests still running after the graceful timeout: ending the worker")
    drain_all()
    os._exit(0)


def _stop_when_orphaned(master_pid: int) -> None:
    """Stop gracefully once the master is gone (its children are then given to another parent)."""
    while os.getppid() == master_pid:
        time.sleep(ORPHAN_CHECK_INTERVAL_S)
    log.warning("the master process is gone; stopping this worker", extra={"master_pid": master_pid})
    os.kill(os.getpid(), signal.SIGTERM)
