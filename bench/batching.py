"""Batched latency of case 2 inside one process: closed-loop client threads, no socket, no server.

Each client thread sends the case 2 forest's one-row request through the app's WSGI
callable (routing, decoding, the batcher, the model, encoding) and sends the next one as
soon as the answer is back, like a wrk connection. The thread count stands for the
requests one worker holds at once: at wrk concurrency C on W workers, about C / W.
The process serves alone, so the figures carry none of the HTTP server's or the load
generator's cost; they isolate what the batcher and the model add.

Prints one row per client count: requests/s, p50, p99 and max latency, the mean batch and
the p99 of the model calls themselves, and whether the p99 is within the target
(``max_batch_delay`` + one full batch's ``predict`` + the allowance, as :mod:`goals` computes it).

    python bench/batching.py [--clients 8,32] [--seconds 3] [--max-batch-size 64] [--max-batch-delay 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from goals import P99_ALLOWANCE_MS
from inprocess import environ_for

from flaskserve.app import create_app
from flaskserve.inference.observer import NullObserver
from flaskserve.settings import load_settings
from models import predict_seconds, train_forest


class BatchWatch(NullObserver):
    """Counts the rows of every batch the batcher forms, and times every model call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rows = 0
        self.batches = 0
        self.calls: list[float] = []

    def model_called(self, model: str, version: str, method: str, rows: int, seconds: float) -> None:
        with self._lock:
            self.calls.append(seconds)

    def batch_formed(self, model: str, version: str, rows: int, requests: int, queue_wait_s: float) -> None:
        with self._lock:
            self.rows += rows
            self.batches += 1


def closed_loop(app: Any, body: bytes, clients: int, seconds: float, limit: int) -> tuple[list[float], float]:
    """Latencies in seconds of every request, and the wall time the clients ran for.

    Each client stops after ``seconds`` or ``limit`` requests, whichever comes first.
    """
    make_environ = environ_for("/predict", "application/json", body)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []
    start_line = threading.Barrier(clients + 1)

    def start_response(status: str, headers: Iterable[tuple[str, str]], exc_info: Any = None) -> None:
        if not status.startswith("200"):
            failures.append(status)

    def client(own: list[float]) -> None:
        start_line.wait()
        stop = time.perf_counter() + seconds
        while len(own) < limit:
            sent = time.perf_counter()
            if sent >= stop:
                break
            for _chunk in app(make_environ(), start_response):
                pass
            own.append(time.perf_counter() - sent)

    threads = [threading.Thread(target=client, args=(own,), daemon=True) for own in latencies]
    for thread in threads:
        thread.start()
    start_line.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise SystemExit(f"requests failed: {failures[:3]}")
    return [latency for own in latencies for latency in own], elapsed


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="8,32", help="comma-separated client thread counts")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per client count")
    parser.add_argument("--limit", type=int, default=20_000, help="requests per client at most")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-batch-delay", type=float, default=5.0, help="milliseconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        model = train_forest(Path(folder))
        full_batch_ms = predict_seconds(model, args.max_batch_size) * 1000
        bound = args.max_batch_delay + full_batch_ms + P99_ALLOWANCE_MS
        sizes = BatchWatch()
        settings = load_settings(
            None,
            model_path=model.path,
            allow_pickle=True,
            max_batch_size=args.max_batch_size,
            max_batch_delay_ms=args.max_batch_delay,
        )
        app = create_app(settings, observer=sizes)
        body = orjson.dumps(model.named_row())
        closed_loop(app, body, 1, 0.5, 200)  # warm-up: the route, the kernel, the imports
        print(
            f"full batch ({args.max_batch_size} rows) predict: {full_batch_ms:.1f} ms; "
            f"p99 target ≤ {bound:.1f} ms"
        )
        print(
            "| clients | requests/s | p50 ms | p99 ms | max ms | mean batch rows | model call p99 ms "
            "| p99 within target |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---|")
        for clients in (int(part) for part in args.clients.split(",") if part):
            before_rows, before_batches = sizes.rows, sizes.batches
            sizes.calls.clear()
            latencies, elapsed = closed_loop(app, body, clients, args.seconds, args.limit)
            batches = sizes.batches - before_batches
            mean_batch = (sizes.rows - before_rows) / batches if batches else 0.0
            p99 = percentile(latencies, 0.99) * 1000
            call_p99 = percentile(sizes.calls, 0.99) * 1000 if sizes.calls else 0.0
            print(
                f"| {clients} | {len(latencies) / elapsed:,.0f} "
                f"| {statistics.median(latencies) * 1000:.1f} | {p99:.1f} "
                f"| {max(latencies) * 1000:.1f} | {mean_batch:.1f} | {call_p99:.1f} "
                f"| {'yes' if p99 <= bound else 'no'} |"
            )


if __name__ == "__main__":
    main()
