"""The metric writes of one served request, with ``prometheus_client``'s value class and with flaskserve's.

Under ``flaskserve serve`` every metric value lives in a per-process file. This
times, in one process, the calls a one-row prediction makes to :class:`Metrics`
(in flight up and down, the request counted, its duration and the model call
observed: seven values written), once with the library's own multiprocess value
class and once with :class:`~flaskserve.observability.process_values.ProcessFileValue`,
each in a directory of its own, alternating rounds. It prints the median over
rounds of the thread CPU time per request, and the ``getpid`` calls each path makes;
then the time of one value write alone with each class, and with values kept in memory.

    python bench/metric_writes.py [--requests 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, values

from flaskserve.observability import process_values
from flaskserve.observability.metrics import Metrics
from flaskserve.observability.multiprocess import ENV_VAR


def use_library_class() -> None:
    values.ValueClass = values.MultiProcessValue()


def built_with(choose_value_class: Callable[[], None], directory: str) -> Metrics:
    """Metrics whose values are of the class ``choose_value_class`` installs, kept in ``directory``."""
    os.environ[ENV_VAR] = directory
    choose_value_class()
    metrics = Metrics(multiprocess_dir=directory)
    # Labelled values are made at their first use, by the class installed then: make them now.
    one_request(metrics)
    return metrics


def one_request(metrics: Metrics) -> None:
    metrics.request_started()
    metrics.model_called("linear", "1", "predict", 1, 0.00021)
    metrics.request_answered(
        model="linear", version="1", protocol="simple", method="predict", status=200, seconds=0.0009
    )
    metrics.request_ended()


def cpu_per_request(metrics: Metrics, count: int) -> float:
    started = time.thread_time()
    for _ in range(count):
        one_request(metrics)
    return (time.thread_time() - started) / count


def getpid_calls(metrics: Metrics) -> int:
    """How often one request calls ``os.getpid`` (each call is a system call)."""
    calls = 0

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "c_call" and arg is os.getpid:
            calls += 1

    sys.setprofile(count)
    try:
        one_request(metrics)
    finally:
        sys.setprofile(None)
    return calls


def cpu_per_write(counter: Counter, count: int) -> float:
    inc = counter._value.inc
    started = time.thread_time()
    for _ in range(count):
        inc(1)
    return (time.thread_time() - started) / count


def use_memory() -> None:
    values.ValueClass = values.MutexValue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as library_dir, tempfile.TemporaryDirectory() as own_dir:
        sides = {
            "prometheus_client's MmapedValue": built_with(use_library_class, library_dir),
            "ProcessFileValue": built_with(process_values.install, own_dir),
        }
        timings: dict[str, list[float]] = {label: [] for label in sides}
        for _ in range(args.rounds):
            for label, metrics in sides.items():
                timings[label].append(cpu_per_request(metrics, args.requests))
        print(f"{args.requests} requests x {args.rounds} rounds, load average {os.getloadavg()[0]:.2f}")
        print(f"{'value class':<34} {'CPU us/request':>15} {'getpid/request':>15}")
        for label, metrics in sides.items():
            print(
                f"{label:<34} {statistics.median(timings[label]) * 1e6:>15.2f} {getpid_calls(metrics):>15d}"
            )
        counters: dict[str, Counter] = {}
        for label, choose, directory in (
            ("prometheus_client's MmapedValue", use_library_class, library_dir),
            ("ProcessFileValue", process_values.install, own_dir),
            ("MutexValue (in memory)", use_memory, own_dir),
        ):
            os.environ[ENV_VAR] = directory
            choose()
            counters[label] = Counter("jobs", "Jobs done.", registry=None)
        writes: dict[str, list[float]] = {label: [] for label in counters}
        for _ in range(args.rounds):
            for label, counter in counters.items():
                writes[label].append(cpu_per_write(counter, args.requests * 10))
        print(f"\n{'value class':<34} {'ns/value write':>15}")
        for label, taken in writes.items():
            print(f"{label:<34} {statistics.median(taken) * 1e9:>15.0f}")


if __name__ == "__main__":
    main()
