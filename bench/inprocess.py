"""The cost of one small prediction inside the process, with no socket and no server.

Calls the app's WSGI callable directly with a prepared environ, so the figure is
flaskserve's own per-request work (routing, hooks, decoding, the model, encoding)
and nothing of the HTTP server or the network. Prints one table row per route:
the median over several rounds of the mean time per request.

Large requests (1,000 rows as JSON by position, by name, as a V2 JSON tensor and
as a V2 binary tensor) are timed beside their parse floor: the same body turned into a float64
matrix by orjson and numpy alone, with no server, no validation and no model, the
ceiling no server can pass.

    python bench/inprocess.py [--requests 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from flaskserve import testing
from flaskserve.app import create_app
from flaskserve.settings import load_settings

#: (label, path, content type, body) of each request timed.
CASES: tuple[tuple[str, str, str, bytes], ...] = (
    ("simple /predict, one row", "/predict", "application/json", b'{"x": 1.5, "y": 2.0}'),
    (
        "v2 infer, one row",
        "/v2/models/linear/infer",
        "application/json",
        b'{"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [1.5, 2.0]}]}',
    ),
    ("v1 :predict, one row", "/v1/models/linear:predict", "application/json", b'{"instances": [[1.5, 2.0]]}'),
    ("mlflow /invocations, CSV", "/invocations", "text/csv", b"x,y\n1.5,2.0\n"),
)

#: Rows in each large request.
LARGE_ROWS = 1000
#: The header that gives the length of a V2 binary body's JSON part.
V2_HEADER_LENGTH = "HTTP_INFERENCE_HEADER_CONTENT_LENGTH"


def large_rows() -> np.ndarray[Any, np.dtype[np.float64]]:
    """Rows of the tutorial's two features, as a client would send them (six decimals)."""
    return np.random.default_rng(0).normal(size=(LARGE_ROWS, 2)).round(6)


def large_cases() -> list[tuple[str, str, str, bytes, dict[str, str], Callable[[], Any]]]:
    """(label, path, content type, body, extra environ, parse floor) of each large request."""
    rows = large_rows()
    positional = orjson.dumps({"instances": rows.tolist()})
    named = orjson.dumps({"instances": [{"x": x, "y": y} for x, y in rows.tolist()]})
    v2_json = orjson.dumps(
        {"inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP64", "data": rows.tolist()}]}
    )
    raw = rows.astype("<f8").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(rows.shape),
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    ).encode()

    def positional_floor() -> Any:
        return np.array(orjson.loads(positional)["instances"], dtype=np.float64)

    def named_floor() -> Any:
        records = orjson.loads(named)["instances"]
        return np.array([[record["x"], record["y"]] for record in records], dtype=np.float64)

    def v2_json_floor() -> Any:
        return np.array(orjson.loads(v2_json)["inputs"][0]["data"], dtype=np.float64)

    def binary_floor() -> Any:
        orjson.loads(header)
        return np.frombuffer(positional_binary[len(header) :], dtype="<f8").reshape(rows.shape)

    positional_binary = header + raw
    return [
        ("1,000 rows by position, JSON", "/predict", "application/json", positional, {}, positional_floor),
        ("1,000 rows by name, JSON", "/predict", "application/json", named, {}, named_floor),
        (
            "1,000 rows, V2 JSON tensor",
            "/v2/models/linear/infer",
            "application/json",
            v2_json,
            {},
            v2_json_floor,
        ),
        (
            "1,000 rows, V2 binary tensor",
            "/v2/models/linear/infer",
            "application/octet-stream",
            positional_binary,
            {V2_HEADER_LENGTH: str(len(header))},
            binary_floor,
        ),
    ]


def environ_for(
    path: str, content_type: str, body: bytes, extra: dict[str, str] | None = None
) -> Callable[[], dict[str, Any]]:
    base: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "5000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        **(extra or {}),
    }

    def build() -> dict[str, Any]:
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(body)
        return environ

    return build


def time_requests(app: Any, make_environ: Callable[[], dict[str, Any]], count: int) -> float:
    """Mean seconds per request over ``count`` requests; fails loudly on any non-200."""
    statuses: list[str] = []

    def start_response(status: str, headers: Iterable[tuple[str, str]], exc_info: Any = None) -> None:
        statuses.append(status)

    started = time.perf_counter()
    for _ in range(count):
        for _chunk in app(make_environ(), start_response):
            pass
    elapsed = time.perf_counter() - started
    failed = [status for status in statuses if not status.startswith("200")]
    if failed:
        raise SystemExit(f"requests failed: {failed[:3]}")
    return elapsed / count


def time_floor(parse: Callable[[], Any], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        parse()
    return (time.perf_counter() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        repository = testing.write_repository(
            Path(folder), {"linear": {"1": (testing.train_linear_xy(), ".skops")}}
        )
        app = create_app(load_settings(None, model_path=repository, default_model="linear"))
        print(f"| request | µs per request (median of {args.rounds} rounds of {args.requests}) |")
        print("|---|---:|")
        for label, path, content_type, body in CASES:
            make_environ = environ_for(path, content_type, body)
            time_requests(app, make_environ, 200)  # warm-up
            rounds = [time_requests(app, make_environ, args.requests) for _ in range(args.rounds)]
            print(f"| {label} | {statistics.median(rounds) * 1e6:.1f} |")
        large_requests = max(args.requests // 50, 20)
        print()
        timed = f"median of {args.rounds} rounds of {large_requests}"
        print(f"| 1,000-row request | µs per request ({timed}) | rows/s |")
        print("|---|---:|---:|")
        for label, path, content_type, body, extra, floor in large_cases():
            make_environ = environ_for(path, content_type, body, extra)
            time_requests(app, make_environ, 5)  # warm-up
            served = statistics.median(
                time_requests(app, make_environ, large_requests) for _ in range(args.rounds)
            )
            parsed = statistics.median(time_floor(floor, large_requests) for _ in range(args.rounds))
            print(f"| {label}: flaskserve | {served * 1e6:.0f} | {LARGE_ROWS / served:,.0f} |")
            print(f"| {label}: parse floor (ceiling) | {parsed * 1e6:.0f} | {LARGE_ROWS / parsed:,.0f} |")


if __name__ == "__main__":
    main()
