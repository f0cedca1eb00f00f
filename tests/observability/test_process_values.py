"""Metric values in per-process files: summed over processes, a forked child's its own, thread safe."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, values
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.parser import text_string_to_metric_families

from flaskserve.observability import process_values
from flaskserve.observability.metrics import Metrics
from flaskserve.observability.multiprocess import ENV_VAR, metrics_directory

# Python 3.12+ warns about fork() when threads run; each child here counts, then leaves by os._exit.
pytestmark = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")


@pytest.fixture
def directory() -> Iterator[Path]:
    with metrics_directory() as path:
        yield path


def in_child(work: Callable[[], None]) -> int:
    """Run ``work`` in a forked child and wait for it; the child's pid."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            work()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return pid


def counted(directory: Path) -> float | None:
    """The counter ``jobs_total`` summed over every process's file, as a scrape reads it."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return registry.get_sample_value("jobs_total")


def in_file(path: Path) -> dict[str, float]:
    """The values one process's file holds, by the sample name in their key."""
    found = MmapedDict.read_all_values_from_file(str(path))  # type: ignore[no-untyped-call]
    return {json.loads(key)[1]: value for key, value, _, _ in found}


def test_metrics_made_in_the_metrics_directory_keep_their_values_in_files(directory: Path) -> None:
    jobs = Counter("jobs", "Jobs done.", registry=None)
    jobs.inc()
    assert isinstance(jobs._value, process_values.ProcessFileValue)
    assert in_file(directory / f"counter_{os.getpid()}.db") == {"jobs_total": 1.0}


def test_values_written_by_two_processes_are_summed_when_read(directory: Path) -> None:
    jobs = Counter("jobs", "Jobs done.", registry=None)
    jobs.inc(2)
    in_child(lambda: jobs.inc(3))
    assert counted(directory) == 5


def test_a_forked_child_counts_in_a_file_of_its_own_pid_and_not_in_its_parents(directory: Path) -> None:
    jobs = Counter("jobs", "Jobs done.", registry=None)
    jobs.inc(2)
    child = in_child(lambda: jobs.inc(3))
    jobs.inc()

    assert in_file(directory / f"counter_{os.getpid()}.db") == {"jobs_total": 3.0}
    # The child started from zero in its own file: the parent's 2 are not counted twice.
    assert in_file(directory / f"counter_{child}.db") == {"jobs_total": 3.0}
    assert counted(directory) == 6


def test_a_child_forked_while_another_thread_writes_can_write_at_once(directory: Path) -> None:
    jobs = Counter("jobs", "Jobs done.", registry=None)

    def count_within_a_second() -> None:
        # A lock held at the fork by a thread the child does not have would block it for ever.
        signal.alarm(1)
        jobs.inc()

    with process_values._PROCESS.lock:  # as a thread of the parent in the middle of a write
        in_child(count_within_a_second)
    jobs.inc()
    assert counted(directory) == 2


def test_a_child_that_forks_without_touching_a_metric_writes_no_file(directory: Path) -> None:
    Counter("jobs", "Jobs done.", registry=None).inc()
    in_child(lambda: None)
    assert [path.name for path in directory.iterdir()] == [f"counter_{os.getpid()}.db"]


def test_a_worker_given_a_dead_workers_pid_carries_on_its_counts(directory: Path) -> None:
    dead_workers = MmapedDict(str(directory / f"counter_{os.getpid()}.db"))  # type: ignore[no-untyped-call]
    dead_workers.write_value(mmap_key("jobs", "jobs_total", [], [], "Jobs done."), 4.0, 0.0)  # type: ignore[no-untyped-call]
    dead_workers.close()  # type: ignore[no-untyped-call]

    Counter("jobs", "Jobs done.", registry=None).inc()
    assert counted(directory) == 5


def test_increments_from_many_threads_all_add_up(directory: Path) -> None:
    jobs = Counter("jobs", "Jobs done.", registry=None)

    def work() -> None:
        for _ in range(5000):
            jobs.inc()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counted(directory) == 40_000


def serve_requests(metrics: Metrics, *, left_in_flight: bool) -> None:
    """A request answered, and maybe another still in flight (as in a worker killed mid-request)."""
    metrics.request_started()
    metrics.model_called("linear", "1", "predict", 1, 0.0002)
    metrics.request_answered(
        model="linear", version="1", protocol="simple", method="predict", status=200, seconds=0.001
    )
    metrics.request_ended()
    if left_in_flight:
        metrics.request_started()


def scraped_after_workers_served(directory: Path) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
    """/metrics after a parent and two workers it forked served, one dead with a request in flight."""
    metrics = Metrics(multiprocess_dir=str(directory))
    serve_requests(metrics, left_in_flight=False)
    in_child(lambda: serve_requests(metrics, left_in_flight=False))
    killed = in_child(lambda: serve_requests(metrics, left_in_flight=True))
    mark_process_dead(killed, str(directory))  # type: ignore[no-untyped-call]
    serve_requests(metrics, left_in_flight=True)
    return sorted(
        (sample.name, tuple(sorted(sample.labels.items())), sample.value)
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
    )


def test_metrics_read_the_same_as_with_prometheus_clients_own_value_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with metrics_directory() as directory:
        own = scraped_after_workers_served(directory)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())
    library = scraped_after_workers_served(tmp_path)

    assert own == library
    assert ("flaskserve_requests_in_flight", (), 1.0) in own
    answered = (
        ("method", "predict"),
        ("model", "linear"),
        ("protocol", "simple"),
        ("status", "200"),
        ("version", "1"),
    )
    assert ("flaskserve_requests_total", answered, 4.0) in own
