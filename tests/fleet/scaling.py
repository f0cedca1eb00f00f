"""Throughput of the fleet with 1, 2 and 3 replicas behind nginx: ``make fleet`` writes it to docs/scaling.md.

The same three replicas (one worker each, on hosts of their own, sharing Redis
for rate limits and the cache) serve all three rounds; what changes is how many
of them nginx balances over. Each row is the median of ``--rounds`` runs of a
closed loop of ``--threads`` clients for ``--seconds``, the sizes interleaved
so that the machine's other work spreads over all of them. Every request is a
new row, so each request is a shared-cache miss: a model call, a Redis read
and a Redis write.

Run as root: ``python tests/fleet/scaling.py --seconds 10 --update-doc docs/scaling.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from cluster import Fleet  # noqa: E402
from network import Network, why_namespaces_cannot_be_made  # noqa: E402

from flaskserve import testing  # noqa: E402
from nginx import Nginx  # noqa: E402
from reliability.load_loop import run_load  # noqa: E402

BEGIN, END = "<!-- fleet-throughput:begin -->", "<!-- fleet-throughput:end -->"


def measure(seconds: float, rounds: int, threads: int) -> dict[int, list[float]]:
    rates: dict[int, list[float]] = {1: [], 2: [], 3: []}
    with tempfile.TemporaryDirectory(prefix="fleet-scaling-") as work, Network() as network:
        root = Path(work)
        repository = testing.write_repository(
            root / "repository",
            {
                "iris": {"1": (testing.train_iris_classifier(), ".skops")},
                "linear": {"1": (testing.train_linear_xy(), ".skops")},
            },
        )
        fleet_dir = root / "fleet"
        fleet_dir.mkdir()
        fleet = Fleet(network, fleet_dir, repository)
        balancers: dict[int, Nginx] = {}
        try:
            fleet.start()
            for size in rates:
                balancer_dir = root / f"nginx-{size}"
                balancer_dir.mkdir()
                balancers[size] = Nginx(
                    balancer_dir, [f"{r.host.address}:8080" for r in fleet.replicas[:size]]
                )
                balancers[size].start()
            counter = iter(range(10**9))
            for _ in range(rounds):
                for size, balancer in balancers.items():
                    url = balancer.url + "/models/linear/predict"

                    def request(session, url=url):  # type: ignore[no-untyped-def]
                        n = next(counter)
                        return session.post(url, json={"x": n, "y": -n}, headers=fleet.headers, timeout=10)

                    result = run_load(request, threads=threads, duration_s=seconds)
                    assert result.failures() == 0, result.summary()
                    rates[size].append(result.total / result.seconds)
        finally:
            for balancer in balancers.values():
                balancer.stop()
            fleet.close()
    return rates


def table(rates: dict[int, list[float]], seconds: float, rounds: int, threads: int) -> str:
    cores = os.cpu_count() or 1
    one = statistics.median(rates[1])
    lines = [
        BEGIN,
        f"Closed loop of {threads} clients through nginx, {seconds:g} s a run, median of {rounds} runs; "
        f"each replica is one gunicorn worker; the machine has {cores} cores, shared with other work.",
        "",
        "| replicas | requests/s (median) | per core | vs one replica |",
        "|---:|---:|---:|---:|",
    ]
    for size, found in rates.items():
        median = statistics.median(found)
        lines.append(f"| {size} | {median:.0f} | {median / cores:.0f} | {median / one:.2f} x |")
    lines.append(END)
    return "\n".join(lines)


def update_doc(path: Path, block: str) -> None:
    text = path.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    path.write_text(text[:start] + block + text[end:], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--update-doc", type=Path)
    options = parser.parse_args(argv)
    reason = why_namespaces_cannot_be_made()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 2
    rates = measure(options.seconds, options.rounds, options.threads)
    block = table(rates, options.seconds, options.rounds, options.threads)
    print(block)
    if options.update_doc is not None:
        update_doc(options.update_doc, block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
