"""gRPC against REST on one flaskserve server, and against MLServer's gRPC when its virtualenv exists.

Two cases: the tutorial's LinearRegression with one row per request, and the
100-tree forest with 32 rows per request. Each target is driven by client
processes (tritonclient's gRPC client, or requests sending V2 with binary
tensors for REST), each sending one request at a time for a few seconds; the table
reports requests per second and the median latency, as the median over rounds
in which the targets take turns, so that the machine's load hits them alike.

flaskserve runs as ``flaskserve serve --workers 2 --grpc-port``; MLServer
(``bench/setup_peers.sh`` makes its virtualenv) with ``parallel_workers`` 2 and
debug off. Usage::

    python bench/grpc_bench.py [--seconds 4] [--rounds 3] [--clients 4] [--update-doc docs/performance.md]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import peer_envs

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MLSERVER_BIN = peer_envs.bin_dir("mlserver") / "mlserver"
START_TIMEOUT_S = 120
BEGIN, END = "<!-- grpc-bench:begin -->", "<!-- grpc-bench:end -->"


@dataclass(frozen=True)
class Case:
    model: str
    rows: int
    features: int
    title: str


CASES = (
    Case("linear", 1, 2, "LinearRegression, 1 row"),
    Case("forest", 32, 20, "RandomForest (100 trees), 32 rows"),
)


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "grpc" or "rest"
    address: str
    version: str


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def drive(
    kind: str, address: str, model: str, version: str, rows: int, features: int, seconds: float
) -> None:
    """One client: requests one at a time for ``seconds``; prints the count and median latency as JSON."""
    import numpy as np

    data = np.random.default_rng(0).normal(size=(rows, features))
    send = (
        _grpc_sender(address, model, version, data) if kind == "grpc" else _rest_sender(address, model, data)
    )
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    # Bounded in count as well as time.
    while time.perf_counter() < deadline and len(latencies) < 1_000_000:
        started = time.perf_counter()
        send()
        latencies.append(time.perf_counter() - started)
    print(json.dumps({"count": len(latencies), "median_ms": statistics.median(latencies) * 1000}))


def _grpc_sender(address: str, model: str, version: str, data: Any) -> Any:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(address)
    tensor = grpcclient.InferInput("input", list(data.shape), "FP64")
    tensor.set_data_from_numpy(data)
    return lambda: client.infer(model, [tensor], model_version=version)


def _rest_sender(address: str, model: str, data: Any) -> Any:
    """V2 over HTTP with the binary tensor extension, sent by requests in one write.

    tritonclient's HTTP client writes the head and a larger body separately, which on
    a loopback connection meets delayed ACKs and stalls each 32-row request for tens of
    milliseconds: a property of that client, not of the server, so it is not used here.
    """
    import requests

    raw = data.astype("<f8").tobytes()
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(data.shape),
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    session = requests.Session()
    url = f"http://{address}/v2/models/{model}/versions/1/infer"
    headers = {"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"}
    body = head + raw

    def send() -> None:
        response = session.post(url, data=body, headers=headers, timeout=30)
        response.raise_for_status()

    return send


def measure(target: Target, case: Case, clients: int, seconds: float) -> tuple[float, float]:
    """Requests per second over all clients, and the median of their median latencies (ms)."""
    argv = [sys.executable, __file__, "--drive", target.kind, target.address, case.model, target.version]
    argv += [str(case.rows), str(case.features), str(seconds)]
    processes = [subprocess.Popen(argv, stdout=subprocess.PIPE) for _ in range(clients)]
    results = []
    for process in processes:
        out, _ = process.communicate(timeout=seconds + 60)
        if process.returncode != 0:
            raise RuntimeError(f"a {target.name} client failed")
        results.append(json.loads(out))
    return sum(r["count"] for r in results) / seconds, statistics.median(r["median_ms"] for r in results)


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    import requests

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} was not ready within {START_TIMEOUT_S} s")


@contextmanager
def running(argv: list[str], ready_url: str, cwd: Path, log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(ready_url, process)
        # Both workers open the gRPC port after the fork; give the second one a moment.
        time.sleep(2)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def flaskserve_targets(repository: Path, scratch: Path) -> tuple[list[str], str, list[Target]]:
    http, grpc_port = free_port(), free_port()
    argv = [sys.executable, "-m", "flaskserve", "serve", str(repository), "--port", str(http)]
    argv += ["--grpc-port", str(grpc_port), "--workers", "2", "--allow-pickle", "--log-level", "warning"]
    targets = [
        Target("flaskserve gRPC", "grpc", f"127.0.0.1:{grpc_port}", "1"),
        Target("flaskserve REST (V2, binary tensors)", "rest", f"127.0.0.1:{http}", "1"),
    ]
    return argv, f"http://127.0.0.1:{http}/v2/health/ready", targets


def mlserver_targets(models: dict[str, Path], scratch: Path) -> tuple[list[str], str, list[Target]]:
    folder = scratch / "mlserver"
    http, grpc_port = free_port(), free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": http,
        "grpc_port": grpc_port,
        "metrics_port": free_port(),
        "debug": False,
        "parallel_workers": 2,
    }
    for name, path in models.items():
        (folder / name).mkdir(parents=True)
        model_settings = {
            "name": name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": str(path)},
        }
        (folder / name / "model-settings.json").write_text(json.dumps(model_settings))
    (folder / "settings.json").write_text(json.dumps(settings))
    argv = [str(MLSERVER_BIN), "start", str(folder)]
    return (
        argv,
        f"http://127.0.0.1:{http}/v2/health/ready",
        [Target("MLServer gRPC", "grpc", f"127.0.0.1:{grpc_port}", "")],
    )


def run(args: argparse.Namespace) -> str:
    sys.path.insert(0, str(HERE))
    from models import train_forest, train_linear

    scratch = Path(tempfile.mkdtemp(prefix="grpc-bench-"))
    trained = scratch / "trained"
    trained.mkdir()
    models = {"linear": train_linear(trained).path, "forest": train_forest(trained).path}
    repository = scratch / "repository"
    for name, path in models.items():
        (repository / name / "1").mkdir(parents=True)
        (repository / name / "1" / path.name).write_bytes(path.read_bytes())
    servers = [flaskserve_targets(repository, scratch)]
    if MLSERVER_BIN.exists():
        servers.append(mlserver_targets(models, scratch))
    else:
        print("MLServer's virtualenv is missing (bench/setup_peers.sh): measuring flaskserve only")
    figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
    env_cwd = ROOT
    with _all_running(servers, scratch, env_cwd):
        targets = [target for _, _, group in servers for target in group]
        for round_number in range(args.rounds):
            for case in CASES:
                for target in targets:
                    result = measure(target, case, args.clients, args.seconds)
                    figures.setdefault((case.model, target.name), []).append(result)
                    print(
                        f"round {round_number + 1} {case.title:36} {target.name:30} {result[0]:8.0f} req/s "
                        f"{result[1]:7.2f} ms",
                        flush=True,
                    )
    return table(figures, [t for _, _, group in servers for t in group], args)


@contextmanager
def _all_running(
    servers: list[tuple[list[str], str, list[Target]]], scratch: Path, cwd: Path
) -> Iterator[None]:
    if not servers:
        yield
        return
    (argv, ready, _), rest = servers[0], servers[1:]
    log = scratch / f"server-{len(rest)}.log"
    with running(argv, ready, cwd, log), _all_running(rest, scratch, cwd):
        yield


def table(
    figures: dict[tuple[str, str], list[tuple[float, float]]], targets: list[Target], args: argparse.Namespace
) -> str:
    lines = [
        f"Measured by `make bench-grpc` ({args.clients} client processes, one request at a time each, "
        f"{args.seconds:g} s per measurement, median of {args.rounds} rounds taken in turns; "
        f"{os.cpu_count()} cores shared with other work, so read the ratios, not the absolute figures).",
        "",
        "| case | server | req/s | median latency (ms) | vs flaskserve gRPC |",
        "|---|---|---:|---:|---:|",
    ]
    for case in CASES:
        reference = statistics.median(r for r, _ in figures[(case.model, targets[0].name)])
        for target in targets:
            rates = [r for r, _ in figures[(case.model, target.name)]]
            latencies = [m for _, m in figures[(case.model, target.name)]]
            rate = statistics.median(rates)
            lines.append(
                f"| {case.title} | {target.name} | {rate:.0f} | {statistics.median(latencies):.2f} | "
                f"{rate / reference:.2f} x |"
            )
    return "\n".join(lines) + "\n"


def update_doc(path: Path, text: str) -> None:
    document = path.read_text()
    block = f"{BEGIN}\n{text}{END}"
    if BEGIN in document:
        document = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, document, flags=re.S)
    else:
        document += f"\n## gRPC\n\n{block}\n"
    path.write_text(document)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--drive":
        kind, address, model, version, rows, features, seconds = sys.argv[2:9]
        drive(kind, address, model, version, int(rows), int(features), float(seconds))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--update-doc", type=Path)
    args = parser.parse_args()
    text = run(args)
    print(text)
    if args.update_doc is not None:
        update_doc(args.update_doc, text)


if __name__ == "__main__":
    main()
