"""A soak: minutes of mixed traffic against a running server, with its workers' memory and files watched.

    python tests/reliability/soak.py --minutes 10 --server gunicorn
    python tests/reliability/soak.py --minutes 10 --server gunicorn --server granian \\
        --update-doc docs/reliability.md

The mix (:class:`Mix`) is built on the test repository's models (``tests/conftest.py``'s
``repository``: ``linear``, ``diabetes``, ``iris`` versions 1 and 2): one-row
predictions with fresh values, so the prediction cache keeps evicting; the same
few iris version 2 rows again and again, so they hit it; batches of 1,000 rows;
invalid bodies, which must get a 4xx; and reads of ``/metrics`` and ``/models``.
Every protocol takes part: simple ``/predict``, V2 infer in JSON and binary,
V1 ``:predict``, MLflow ``/invocations`` in JSON and CSV.

:func:`soak` runs a warm-up, then the soak proper, and returns a
:class:`SoakReport`: per interval (a minute in the long form) the requests,
their answers by class, the cache hits, p50 and p99 latency; and samples of each
worker's resident memory (``VmRSS``) and open file descriptors, read from
``/proc`` before the warm-up, after it and at the end (with the load stopped, so
that kept-alive client connections do not count), and at the end of each
interval (under load). A leak shows as growth between the end of the warm-up and
the end, when caches and pools have long reached their bounds.

Run as a script, it trains the models, starts ``flaskserve serve`` itself
(``tests/live_server.py``'s :class:`ServerLauncher`), prints the tables, and
with ``--update-doc`` writes them into that file's "Soak" section, between
markers per server, so that a rerun replaces its own figures. The exit status
is 1 when a pass criterion fails (:meth:`SoakReport.problems`).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import shlex
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import requests

#: Seconds one request may take before it counts as not answered.
REQUEST_TIMEOUT_S = 10.0
#: An upper bound on the requests of one phase, whatever its duration.
MAX_REQUESTS = 1_000_000
#: Rows of a large batch.
BATCH_ROWS = 1000
#: Seconds given to the server, once the clients have closed their connections, to close its ends.
SETTLE_S = 1.0
#: The growth of RSS and of open files, per worker, the long form allows between warm-up and end.
MAX_GROWTH = 0.05
#: Prediction cache entries per model version for the servers started here.
CACHE_SIZE = 128

SECTION = "## Soak"
#: Where the generated paragraph is wrapped, as the document's prose is.
DOC_WIDTH = 105
IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
#: Ranges the iris rows are drawn from (centimetres, about those of the data set).
IRIS_RANGES = ((4.3, 7.9), (2.0, 4.4), (1.0, 6.9), (0.1, 2.5))
DIABETES_FEATURES = 10
#: How many distinct iris version 2 rows the "cached" requests repeat.
CACHED_ROWS = 8


# ------------------------------------------------------------------------------------------- the mix


@dataclass(frozen=True)
class Call:
    """One request of the mix: what it is (``kind``, ``label``) and how to send it."""

    kind: str
    label: str
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def must_be_refused(self) -> bool:
        """An invalid body: only a 4xx is right. Every other call must get a 200."""
        return self.kind == "invalid"


Maker = Callable[[random.Random], Call]

JSON = {"Content-Type": "application/json"}
CSV = {"Content-Type": "text/csv"}
BINARY = "application/octet-stream"
HEADER_LENGTH = "Inference-Header-Content-Length"


def _json(kind: str, label: str, path: str, document: Any, **headers: str) -> Call:
    return Call(kind, label, "POST", path, orjson.dumps(document), {**JSON, **headers})


def _csv(kind: str, label: str, header: Sequence[str], rows: Any, **headers: str) -> Call:
    lines = [",".join(header), *(",".join(repr(float(v)) for v in row) for row in rows)]
    return Call(kind, label, "POST", "/invocations", ("\n".join(lines) + "\n").encode(), {**CSV, **headers})


def _v2_binary(kind: str, label: str, path: str, matrix: np.ndarray[Any, Any]) -> Call:
    raw = np.ascontiguousarray(matrix, dtype="<f8").tobytes()
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(matrix.shape),
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
        }
    )
    headers = {"Content-Type": BINARY, HEADER_LENGTH: str(len(head))}
    return Call(kind, label, "POST", path, head + raw, headers)


def _v2_json(kind: str, label: str, path: str, matrix: np.ndarray[Any, Any]) -> Call:
    tensor = {
        "name": "input",
        "shape": list(matrix.shape),
        "datatype": "FP64",
        "data": matrix.ravel().tolist(),
    }
    return _json(kind, label, path, {"inputs": [tensor]})


def linear_rows(rng: random.Random, count: int) -> np.ndarray[Any, Any]:
    generator = np.random.default_rng(rng.getrandbits(64))
    return np.round(generator.uniform(-10, 10, size=(count, 2)), 4)


def diabetes_rows(rng: random.Random, count: int) -> np.ndarray[Any, Any]:
    generator = np.random.default_rng(rng.getrandbits(64))
    return np.round(generator.uniform(-0.1, 0.1, size=(count, DIABETES_FEATURES)), 5)


def iris_rows(rng: random.Random, count: int) -> np.ndarray[Any, Any]:
    generator = np.random.default_rng(rng.getrandbits(64))
    low, high = np.array(IRIS_RANGES).T
    return np.round(generator.uniform(low, high, size=(count, len(IRIS_FEATURES))), 2)


def _one_row_makers() -> list[tuple[int, Maker]]:
    """Fresh values every time: the cache misses, stores, and evicts once full."""

    def simple(rng: random.Random) -> Call:
        x, y = linear_rows(rng, 1)[0].tolist()
        return _json("one-row", "simple", "/predict", {"x": x, "y": y})

    def v2_json(rng: random.Random) -> Call:
        return _v2_json("one-row", "v2 json", "/v2/models/diabetes/infer", diabetes_rows(rng, 1))

    def v2_binary(rng: random.Random) -> Call:
        return _v2_binary("one-row", "v2 binary", "/v2/models/diabetes/infer", diabetes_rows(rng, 1))

    def v1(rng: random.Random) -> Call:
        rows = iris_rows(rng, 1).tolist()
        return _json("one-row", "v1", "/v1/models/iris/versions/1:predict", {"instances": rows})

    def mlflow_json(rng: random.Random) -> Call:
        document = {"dataframe_split": {"columns": ["x", "y"], "data": linear_rows(rng, 1).tolist()}}
        return _json("one-row", "mlflow json", "/invocations", document)

    def mlflow_csv(rng: random.Random) -> Call:
        return _csv("one-row", "mlflow csv", ["x", "y"], linear_rows(rng, 1))

    return [(10, simple), (7, v2_json), (7, v2_binary), (7, v1), (7, mlflow_json), (6, mlflow_csv)]


def _cached_makers() -> list[tuple[int, Maker]]:
    """A few iris version 2 rows, which nothing else asks for, through every protocol: hits."""
    pool = iris_rows(random.Random(2), CACHED_ROWS)
    iris_2 = {"X-Model-Name": "iris", "X-Model-Version": "2"}

    def row(rng: random.Random) -> np.ndarray[Any, Any]:
        index = rng.randrange(CACHED_ROWS)
        return pool[index : index + 1]

    def simple(rng: random.Random) -> Call:
        record = dict(zip(IRIS_FEATURES, row(rng)[0].tolist(), strict=True))
        return _json("cached", "simple", "/models/iris/versions/2/predict", record)

    def v2_json(rng: random.Random) -> Call:
        return _v2_json("cached", "v2 json", "/v2/models/iris/versions/2/infer", row(rng))

    def v2_binary(rng: random.Random) -> Call:
        return _v2_binary("cached", "v2 binary", "/v2/models/iris/versions/2/infer", row(rng))

    def v1(rng: random.Random) -> Call:
        return _json("cached", "v1", "/v1/models/iris/versions/2:predict", {"instances": row(rng).tolist()})

    def mlflow_json(rng: random.Random) -> Call:
        document = {"dataframe_split": {"columns": list(IRIS_FEATURES), "data": row(rng).tolist()}}
        return _json("cached", "mlflow json", "/invocations", document, **iris_2)

    def mlflow_csv(rng: random.Random) -> Call:
        return _csv("cached", "mlflow csv", IRIS_FEATURES, row(rng), **iris_2)

    return [(4, simple), (3, v2_json), (3, v2_binary), (4, v1), (3, mlflow_json), (3, mlflow_csv)]


def _batch_makers() -> list[tuple[int, Maker]]:
    """Batches of :data:`BATCH_ROWS` fresh rows: large bodies, large answers, large cache entries."""
    iris_1 = {"X-Model-Name": "iris", "X-Model-Version": "1"}

    def simple(rng: random.Random) -> Call:
        document = {"instances": linear_rows(rng, BATCH_ROWS).tolist()}
        return _json("batch", "simple", "/models/linear/predict", document)

    def v2_binary(rng: random.Random) -> Call:
        return _v2_binary("batch", "v2 binary", "/v2/models/diabetes/infer", diabetes_rows(rng, BATCH_ROWS))

    def v1(rng: random.Random) -> Call:
        document = {"instances": iris_rows(rng, BATCH_ROWS).tolist()}
        return _json("batch", "v1", "/v1/models/iris/versions/1:predict", document)

    def mlflow_csv(rng: random.Random) -> Call:
        return _csv("batch", "mlflow csv", IRIS_FEATURES, iris_rows(rng, BATCH_ROWS), **iris_1)

    return [(2, simple), (2, v2_binary), (1, v1), (1, mlflow_csv)]


#: Invalid requests: (label, path, body, headers). Each must be refused with a 4xx.
INVALID: tuple[tuple[str, str, bytes, dict[str, str]], ...] = (
    ("simple, not JSON", "/predict", b'{"x": 1', JSON),
    ("simple, a feature missing", "/predict", b'{"x": 1}', JSON),
    ("simple, a text value", "/predict", b'{"x": "one", "y": 2}', JSON),
    ("simple, unknown model", "/models/nope/predict", b'{"x": 1, "y": 2}', JSON),
    (
        "simple, predict_proba of a regressor",
        "/predict",
        b'{"x": 1, "y": 2, "method": "predict_proba"}',
        JSON,
    ),
    ("simple, nested too deep", "/predict", b"[" * 100 + b"]" * 100, JSON),
    ("simple, empty body", "/predict", b"", JSON),
    (
        "v2, wrong shape",
        "/v2/models/diabetes/infer",
        b'{"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}',
        JSON,
    ),
    ("v2, header length past the body", "/v2/models/diabetes/infer", b"{}", {HEADER_LENGTH: "99"}),
    ("v1, too few features", "/v1/models/iris/versions/1:predict", b'{"instances": [[1, 2]]}', JSON),
    ("mlflow, unknown CSV column", "/invocations", b"x,z\n1,2\n", CSV),
    ("mlflow, text/plain", "/invocations", b"x,y\n1,2\n", {"Content-Type": "text/plain"}),
)


def _invalid_makers() -> list[tuple[int, Maker]]:
    def maker(label: str, path: str, body: bytes, headers: dict[str, str]) -> Maker:
        call = Call("invalid", label, "POST", path, body, headers)
        return lambda _rng: call

    return [(2, maker(*entry)) for entry in INVALID]


def _read_makers() -> list[tuple[int, Maker]]:
    models = Call("read", "models", "GET", "/models")
    metrics = Call("read", "metrics", "GET", "/metrics")
    return [(6, lambda _rng: models), (4, lambda _rng: metrics)]


class Mix:
    """The weighted request mix; :meth:`draw` picks and builds the next request.

    Weights, out of 104: one-row 44, cached 20, batch 6, invalid 24 (12 kinds), reads 10.
    """

    def __init__(self) -> None:
        makers = [
            *_one_row_makers(),
            *_cached_makers(),
            *_batch_makers(),
            *_invalid_makers(),
            *_read_makers(),
        ]
        self._weights = [weight for weight, _ in makers]
        self._makers = [maker for _, maker in makers]

    def draw(self, rng: random.Random) -> Call:
        [maker] = rng.choices(self._makers, weights=self._weights)
        return maker(rng)


# ------------------------------------------------------------------------------------- measurements


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request as the client saw it: when it started (seconds into the phase) and how it ended."""

    started_s: float
    latency_s: float
    kind: str
    label: str
    #: The status code, or None when no answer came (connection error, timeout).
    status: int | None
    error: str | None
    cache_hit: bool

    @property
    def status_class(self) -> str:
        return f"{self.status // 100}xx" if self.status is not None else "no answer"

    @property
    def as_expected(self) -> bool:
        if self.kind == "invalid":
            return self.status is not None and 400 <= self.status < 500
        return self.status == 200


@dataclass(frozen=True)
class WorkerUsage:
    rss_kb: int
    fds: int
    threads: int


@dataclass(frozen=True)
class ResourceSample:
    """Every worker's usage at one moment: ``label`` is "before warm-up", "after warm-up", "end" or
    "interval N" (taken under load)."""

    label: str
    at_s: float
    workers: dict[int, WorkerUsage]


def worker_usage(pid: int) -> WorkerUsage | None:
    """VmRSS, open file descriptors and threads of ``pid`` from ``/proc``; None once it is gone."""
    proc = Path("/proc") / str(pid)
    try:
        status = (proc / "status").read_text()
        fds = len(os.listdir(proc / "fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return WorkerUsage(
        rss_kb=int(fields["VmRSS"].split()[0]), fds=fds, threads=int(fields["Threads"].strip())
    )


def percentile_ms(latencies: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile, in milliseconds; NaN with no latencies."""
    ordered = sorted(latencies)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] * 1000


@dataclass(frozen=True)
class IntervalStats:
    """What one interval of the soak (or the whole warm-up) saw."""

    name: str
    seconds: float
    requests: int
    by_class: dict[str, int]
    #: Requests not answered as they should be: an invalid body not refused with a 4xx, any
    #: other request not answered 200. Counted by label, e.g. ``{"invalid: v2, wrong shape": 1}``.
    unexpected: dict[str, int]
    cache_hits: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, name: str, seconds: float, outcomes: Sequence[Outcome]) -> IntervalStats:
        latencies = [outcome.latency_s for outcome in outcomes]
        unexpected = Counter(f"{o.kind}: {o.label}" for o in outcomes if not o.as_expected)
        return cls(
            name=name,
            seconds=seconds,
            requests=len(outcomes),
            by_class=dict(Counter(outcome.status_class for outcome in outcomes)),
            unexpected=dict(unexpected),
            cache_hits=sum(outcome.cache_hit for outcome in outcomes),
            p50_ms=percentile_ms(latencies, 0.50),
            p99_ms=percentile_ms(latencies, 0.99),
            max_ms=percentile_ms(latencies, 1.0),
        )

    def count(self, status_class: str) -> int:
        return self.by_class.get(status_class, 0)


@dataclass(frozen=True)
class Growth:
    """One worker's usage after the warm-up and at the end; ``end`` is None when the worker is gone."""

    pid: int
    before: WorkerUsage | None
    warm: WorkerUsage
    end: WorkerUsage | None

    @property
    def rss(self) -> float:
        return self.end.rss_kb / self.warm.rss_kb - 1 if self.end is not None else math.inf

    @property
    def fds(self) -> float:
        return self.end.fds / self.warm.fds - 1 if self.end is not None else math.inf


@dataclass
class SoakReport:
    warmup: IntervalStats
    intervals: list[IntervalStats]
    samples: list[ResourceSample]
    concurrency: int
    #: The first unexpected answer per label (class and start of its body), to tell what went wrong.
    examples: dict[str, str] = field(default_factory=dict)

    def sample(self, label: str) -> ResourceSample | None:
        return next((sample for sample in self.samples if sample.label == label), None)

    def growth(self) -> list[Growth]:
        """Per worker alive after the warm-up: its usage then and at the end."""
        before, warm, end = (self.sample(label) for label in ("before warm-up", "after warm-up", "end"))
        if warm is None:
            return []
        return [
            Growth(
                pid,
                before.workers.get(pid) if before else None,
                usage,
                end.workers.get(pid) if end else None,
            )
            for pid, usage in sorted(warm.workers.items())
        ]

    def total(self, status_class: str) -> int:
        return sum(interval.count(status_class) for interval in [self.warmup, *self.intervals])

    def problems(self, max_growth: float = MAX_GROWTH, max_fd_growth: float | None = None) -> list[str]:
        """The pass criteria that failed, in words; empty when the soak passed.

        ``max_growth`` bounds the growth of each worker's RSS, and of its open files
        unless ``max_fd_growth`` is given.
        """
        fd_bound = max_growth if max_fd_growth is None else max_fd_growth
        found = []
        if (errors := self.total("5xx")) > 0:
            found.append(f"{errors} answers were 5xx")
        for interval in [self.warmup, *self.intervals]:
            for what, count in sorted(interval.unexpected.items()):
                found.append(f"{interval.name}: {count} x {what} not answered as expected")
        if not self.intervals or not any(interval.requests for interval in self.intervals):
            found.append("no request was made after the warm-up")
        for growth in self.growth():
            if growth.end is None:
                found.append(f"worker {growth.pid} was gone at the end (replaced?)")
                continue
            if growth.rss >= max_growth:
                found.append(f"worker {growth.pid}: RSS grew {growth.rss:.1%} (bound {max_growth:.0%})")
            if growth.fds >= fd_bound:
                found.append(f"worker {growth.pid}: open files grew {growth.fds:.1%} (bound {fd_bound:.0%})")
        return found


# --------------------------------------------------------------------------------------- the driver


WorkerPids = Callable[[], Sequence[int]]


def soak(
    url: str,
    duration_s: float,
    concurrency: int = 4,
    *,
    warmup_s: float = 60.0,
    interval_s: float = 60.0,
    worker_pids: WorkerPids | None = None,
    seed: int = 0,
    max_requests: int = MAX_REQUESTS,
) -> SoakReport:
    """Warm up for ``warmup_s``, then send the mix from ``concurrency`` threads for ``duration_s``.

    ``worker_pids`` lists the server's worker processes (the children of its
    master) when called; without it, no resources are sampled. Each phase stops
    at its deadline or after ``max_requests`` requests, whichever comes first.
    """
    mix = Mix()
    samples: list[ResourceSample] = []
    origin = time.monotonic()

    def take(label: str) -> None:
        if worker_pids is None:
            return
        usage = {pid: worker_usage(pid) for pid in worker_pids()}
        at = time.monotonic() - origin
        samples.append(ResourceSample(label, at, {pid: u for pid, u in usage.items() if u is not None}))

    take("before warm-up")
    warm_outcomes, warm_examples = _drive(url, mix, warmup_s, concurrency, seed, max_requests, 0.0, None)
    time.sleep(SETTLE_S)
    take("after warm-up")
    count = max(1, math.ceil(duration_s / interval_s - 1e-9))
    outcomes, examples = _drive(
        url,
        mix,
        duration_s,
        concurrency,
        seed + 1,
        max_requests,
        interval_s,
        lambda index: take(f"interval {index + 1}"),
    )
    time.sleep(SETTLE_S)
    take("end")
    intervals = []
    for index in range(count):
        start, stop = index * interval_s, min((index + 1) * interval_s, duration_s)
        inside = [outcome for outcome in outcomes if start <= outcome.started_s < stop]
        intervals.append(IntervalStats.of(str(index + 1), stop - start, inside))
    return SoakReport(
        warmup=IntervalStats.of("warm-up", warmup_s, warm_outcomes),
        intervals=intervals,
        samples=samples,
        concurrency=concurrency,
        examples={**warm_examples, **examples},
    )


def _drive(
    url: str,
    mix: Mix,
    duration_s: float,
    concurrency: int,
    seed: int,
    max_requests: int,
    tick_s: float,
    on_tick: Callable[[int], None] | None,
) -> tuple[list[Outcome], dict[str, str]]:
    """``concurrency`` client threads until ``duration_s``; ``on_tick(n)`` every ``tick_s`` meanwhile."""
    started = time.monotonic()
    deadline = started + duration_s
    lock = threading.Lock()
    budget = [max_requests]
    outcomes: list[Outcome] = []
    examples: dict[str, str] = {}

    def client(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        mine: list[Outcome] = []
        with requests.Session() as session:
            while time.monotonic() < deadline:
                with lock:
                    if budget[0] <= 0:
                        break
                    budget[0] -= 1
                call = mix.draw(rng)
                mine.append(outcome := _send(session, url, call, started))
                if not outcome.as_expected:
                    with lock:
                        examples.setdefault(
                            f"{call.kind}: {call.label}", f"{outcome.status_class} {outcome.error or ''}"
                        )
        with lock:
            outcomes.extend(mine)

    threads = [threading.Thread(target=client, args=(n,), name=f"soak-{n}") for n in range(concurrency)]
    for thread in threads:
        thread.start()
    if on_tick is not None and tick_s > 0:
        tick = 0
        # No tick at the deadline: the last interval's figures are those of the end sample.
        while (next_at := started + (tick + 1) * tick_s) < deadline - 1e-3:
            time.sleep(max(0.0, next_at - time.monotonic()))
            on_tick(tick)
            tick += 1
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + REQUEST_TIMEOUT_S + 5)
    return outcomes, examples


def _send(session: requests.Session, url: str, call: Call, origin: float) -> Outcome:
    begun = time.monotonic()
    status: int | None = None
    error: str | None = None
    hit = False
    try:
        response = session.request(
            call.method, url + call.path, data=call.body, headers=call.headers, timeout=REQUEST_TIMEOUT_S
        )
        status = response.status_code
        hit = response.headers.get("X-Cache") == "HIT"
        if not (status == 200 or (call.must_be_refused and 400 <= status < 500)):
            error = response.text[:300]
    except requests.RequestException as exc:
        # The whole chain, not the class alone: a reset and a timeout read differently.
        error = f"{type(exc).__name__}: {exc}"[:300]
    ended = time.monotonic()
    return Outcome(begun - origin, ended - begun, call.kind, call.label, status, error, hit)


# ------------------------------------------------------------------------------------------ reports


def _mb(kb: int) -> str:
    return f"{kb / 1024:.1f}"


def _per_worker(
    sample: ResourceSample | None, pids: Sequence[int], value: Callable[[WorkerUsage], str]
) -> str:
    if sample is None:
        return ""
    return " / ".join(value(sample.workers[pid]) if pid in sample.workers else "-" for pid in pids)


def interval_table(report: SoakReport, unit: str = "minute") -> str:
    pids = [growth.pid for growth in report.growth()]
    lines = [
        f"| {unit} | requests | req/s | 2xx | 4xx | 5xx | no answer | not as expected | cache hits "
        "| p50 ms | p99 ms | max ms | RSS MB per worker | fds per worker |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for interval in [report.warmup, *report.intervals]:
        sample = report.sample("after warm-up" if interval is report.warmup else f"interval {interval.name}")
        if sample is None and interval is report.intervals[-1]:
            sample = report.sample("end")
        rate = interval.requests / interval.seconds if interval.seconds > 0 else 0.0
        lines.append(
            f"| {interval.name} | {interval.requests:,} | {rate:,.0f} | {interval.count('2xx'):,} "
            f"| {interval.count('4xx'):,} | {interval.count('5xx')} | {interval.count('no answer')} "
            f"| {sum(interval.unexpected.values())} | {interval.cache_hits:,} | {interval.p50_ms:.1f} "
            f"| {interval.p99_ms:.1f} | {interval.max_ms:.0f} "
            f"| {_per_worker(sample, pids, lambda u: _mb(u.rss_kb))} "
            f"| {_per_worker(sample, pids, lambda u: str(u.fds))} |"
        )
    return "\n".join(lines)


def resource_table(report: SoakReport) -> str:
    lines = [
        "| worker | RSS MB before warm-up | after warm-up | end | growth "
        "| fds before warm-up | after warm-up | end | growth | threads at end |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for number, growth in enumerate(report.growth(), start=1):
        before, warm, end = growth.before, growth.warm, growth.end
        lines.append(
            f"| {number} | {_mb(before.rss_kb) if before else '-'} | {_mb(warm.rss_kb)} "
            f"| {_mb(end.rss_kb) if end else 'gone'} | {growth.rss:+.1%} "
            f"| {before.fds if before else '-'} | {warm.fds} | {end.fds if end else 'gone'} "
            f"| {growth.fds:+.1%} | {end.threads if end else '-'} |"
        )
    return "\n".join(lines)


def summary(report: SoakReport, max_growth: float = MAX_GROWTH) -> str:
    measured = report.intervals
    total = sum(interval.requests for interval in measured)
    seconds = sum(interval.seconds for interval in measured)
    refused = sum(interval.count("4xx") for interval in measured)
    problems = report.problems(max_growth)
    verdict = "**passed**" if not problems else "**failed**: " + "; ".join(problems)
    return (
        f"{total:,} requests in {seconds:.0f} s after the warm-up ({total / max(seconds, 1e-9):,.0f}/s, "
        f"{report.concurrency} clients), {refused:,} of them refused with a 4xx as they should be; "
        f"{report.total('5xx')} 5xx, {report.total('no answer')} unanswered. "
        f"Criteria (no 5xx, every invalid body a 4xx, RSS and fds per worker grown under "
        f"{max_growth:.0%} from the end of the warm-up): {verdict}."
    )


def doc_block(server: str, report: SoakReport, command: str, load: tuple[float, float]) -> str:
    """The generated part of the "Soak" section for one server, with its markers."""
    start, end = doc_markers(server)
    return "\n".join(
        [
            start,
            f"### {server}",
            "",
            textwrap.fill(
                f"Measured on {time.strftime('%Y-%m-%d')} with `{command}` (load average {load[0]:.1f} "
                f"before, {load[1]:.1f} after). {summary(report)}",
                width=DOC_WIDTH,
                break_long_words=False,
                break_on_hyphens=False,
            ),
            "",
            interval_table(report),
            "",
            resource_table(report),
            end,
        ]
    )


def doc_markers(server: str, tag: str = "soak") -> tuple[str, str]:
    return f"<!-- {tag}-{server}:start -->", f"<!-- {tag}-{server}:end -->"


def update_doc(path: Path, server: str, block: str, *, section: str = SECTION, tag: str = "soak") -> None:
    """Replace ``server``'s block of ``section``, or add it at the section's end (or the file's).

    The availability harness writes its blocks the same way, under its own section and tag.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    start, end = doc_markers(server, tag)
    if start in text and end in text:
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        text = head + block + tail
    elif (heading := re.search(rf"^{re.escape(section)}$", text, re.MULTILINE)) is not None:
        following = text.find("\n## ", heading.end())
        if following == -1:
            text = text.rstrip("\n") + f"\n\n{block}\n"
        else:
            text = text[:following].rstrip("\n") + f"\n\n{block}\n" + text[following:]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + f"{section}\n\n{block}\n"
    path.write_text(text, encoding="utf-8")


# -------------------------------------------------------------------------------------- command line


def write_repository(root: Path) -> Path:
    """The models of ``tests/conftest.py``'s ``repository`` fixture, trained and written under ``root``."""
    from flaskserve import testing

    return testing.write_repository(
        root,
        {
            "iris": {
                "1": (testing.train_iris_classifier(), ".skops"),
                "2": (testing.train_iris_pipeline(), ".skops"),
            },
            "diabetes": {"1": (testing.train_diabetes_regressor(), ".skops")},
            "linear": {"1": (testing.train_linear_xy(), ".skops")},
            "exploding": {"1": (testing.ExplodingRegressor(), ".joblib")},
        },
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # live_server.py sits in tests/, beside this folder.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from live_server import ServerLauncher, children

    command = "python tests/reliability/soak.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    failed = False
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        repository = write_repository(Path(scratch) / "repository")
        for number, server_name in enumerate(args.server or ["gunicorn"]):
            launcher = ServerLauncher(repository, Path(scratch) / f"{number}-{server_name}")
            try:
                server = launcher.start(
                    "--server", server_name, "--cache-size", str(args.cache_size), workers=args.workers
                )
                server.worker_pids(args.workers)
                load_before = os.getloadavg()[0]
                print(f"{server_name}: soaking {server.url} for {args.minutes:g} min", flush=True)
                report = soak(
                    server.url,
                    args.minutes * 60,
                    args.concurrency,
                    warmup_s=args.warmup_seconds,
                    worker_pids=lambda server=server: children(server.process.pid),
                )
                load = (load_before, os.getloadavg()[0])
            finally:
                launcher.stop_all()
            print(f"\n{server_name}: {summary(report)}\n")
            print(interval_table(report))
            print()
            print(resource_table(report))
            for what, example in sorted(report.examples.items()):
                print(f"  {what}: {example}")
            failed |= bool(report.problems())
            if args.update_doc:
                update_doc(args.update_doc, server_name, doc_block(server_name, report, command, load))
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="soak length after the warm-up (default 10)"
    )
    parser.add_argument(
        "--server", action="append", choices=("gunicorn", "granian"), help="repeatable; default gunicorn"
    )
    parser.add_argument("--warmup-seconds", type=float, default=60.0, help="warm-up length (default 60)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="server workers (default 2)")
    parser.add_argument(
        "--cache-size", type=int, default=CACHE_SIZE, help=f"cache entries per model version ({CACHE_SIZE})"
    )
    parser.add_argument("--update-doc", type=Path, help="write the figures into this Markdown file's section")
    return parser


if __name__ == "__main__":
    sys.exit(main())
