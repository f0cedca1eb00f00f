"""``flaskserve serve --grpc-port``, two workers: tritonclient's gRPC client, exact counts, a killed worker.

tritonclient runs in a process of its own (``triton_grpc_client.py`` says why).
One server serves the module (starting one costs seconds); the test that kills
its workers comes last.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from flaskserve import testing
from flaskserve.rpc.proto import grpc_predict_v2_pb2 as pb
from flaskserve.rpc.proto import grpc_predict_v2_pb2_grpc as pb_grpc
from live_server import RunningServer, ServerLauncher, free_port
from metrics_text import samples

pytestmark = pytest.mark.e2e

CLIENT = Path(__file__).with_name("triton_grpc_client.py")
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3]]
#: How long the workers may take to open the gRPC port once HTTP answers.
GRPC_START_S = 20.0

SLOW_MODEL = """
import time

import numpy as np


class Model:
    feature_names_in_ = ["x"]

    def predict(self, features):
        time.sleep(max(0.0, -float(np.min(features[:, 0]))))
        return 2 * features[:, 0]
"""


def infer_request() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="iris", model_version="1")
    tensor = request.inputs.add(name="input", datatype="FP64", shape=[2, 4])
    tensor.contents.fp64_contents.extend(np.ravel(ROWS).tolist())
    return request


def fresh_stub(address: str) -> tuple[grpc.Channel, pb_grpc.GRPCInferenceServiceStub]:
    """A stub on a connection of its own, so that calls spread over the workers as clients do."""
    channel = grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
    return channel, pb_grpc.GRPCInferenceServiceStub(channel)


def call_until_answered(address: str, deadline_s: float) -> pb.ModelInferResponse:
    deadline = time.monotonic() + deadline_s
    while True:
        channel, stub = fresh_stub(address)
        try:
            with channel:
                answer: pb.ModelInferResponse = stub.ModelInfer(infer_request(), timeout=5)
                return answer
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def grpc_requests(server: RunningServer) -> float:
    text = server.get("/metrics").text
    return sum(v for k, v in samples(text, "flaskserve_requests_total").items() if ("protocol", "grpc") in k)


@pytest.fixture(scope="module")
def grpc_served(
    iris_classifier: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, str]]:
    """Two workers serving iris and a model that sleeps for minus its input (in seconds)."""
    root = testing.write_repository(
        tmp_path_factory.mktemp("grpc-models"), {"iris": {"1": (iris_classifier, ".skops")}}
    )
    (root / "slow" / "1").mkdir(parents=True)
    (root / "slow" / "1" / "model.py").write_text(SLOW_MODEL, encoding="utf-8")
    launcher = ServerLauncher(root, tmp_path_factory.mktemp("grpc-server"))
    port = free_port()
    server = launcher.start("--grpc-port", str(port), "--allow-code", "--default-model", "iris")
    address = f"127.0.0.1:{port}"
    try:
        call_until_answered(address, GRPC_START_S)
        yield server, address
    finally:
        launcher.stop_all()


def test_tritonclient_grpc_agrees_with_rest(grpc_served: tuple[RunningServer, str]) -> None:
    server, address = grpc_served
    completed = subprocess.run(
        [sys.executable, str(CLIENT), address], capture_output=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr.decode()
    found: dict[str, Any] = json.loads(completed.stdout)
    rest = server.post(
        "/v2/models/iris/versions/1/infer",
        json={"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64", "data": ROWS}]},
    ).json()
    expected = {o["name"]: o["data"] for o in rest["outputs"]}

    assert (found["live"], found["ready"], found["model_ready"]) == (True, True, True)
    assert found["server"]["name"] == "flaskserve"
    assert found["metadata"]["inputs"] == [{"name": "input", "datatype": "FP64", "shape": ["-1", "4"]}]
    for datatype in ("fp64", "fp32", "fp16"):
        answer = found[datatype]
        assert answer["id"] == "r-1"
        assert answer["model_version"] == "1"
        assert answer["outputs"]["predict"] == expected["predict"] == ["setosa", "virginica"]
        np.testing.assert_allclose(answer["outputs"]["predict_proba"], expected["predict_proba"], rtol=1e-2)
    np.testing.assert_allclose(found["fp64"]["outputs"]["predict_proba"], expected["predict_proba"])
    classified = found["classified"]["outputs"]["predict"]
    assert len(classified) == 4
    assert classified[0].endswith(":0:setosa")
    assert found["unknown_model"]["status"] == "StatusCode.NOT_FOUND"
    assert "nope" in found["unknown_model"]["message"]


def test_requests_are_counted_exactly_across_workers_and_a_killed_worker_is_replaced(
    grpc_served: tuple[RunningServer, str],
) -> None:
    server, address = grpc_served
    before = grpc_requests(server)
    calls = 20
    for _ in range(calls):
        channel, stub = fresh_stub(address)
        with channel:
            stub.ModelInfer(infer_request(), timeout=10)
    # Each worker's counts reach /metrics through the shared directory: poll briefly.
    deadline = time.monotonic() + 5
    while grpc_requests(server) - before < calls and time.monotonic() < deadline:
        time.sleep(0.1)
    assert grpc_requests(server) - before == calls

    victim, survivor = server.worker_pids(2)
    os.kill(victim, signal.SIGKILL)
    # The survivor answers at once; the master starts a replacement that opens the port again.
    answer = call_until_answered(address, 10)
    assert answer.model_name == "iris"
    deadline = time.monotonic() + GRPC_START_S
    while victim in (workers := server.worker_pids(2)) or len(workers) < 2:
        assert time.monotonic() < deadline, "no replacement worker"
        time.sleep(0.1)
    replacement = next(pid for pid in workers if pid != survivor)
    os.kill(survivor, signal.SIGKILL)
    # Now only the replacement can answer: it serves gRPC too.
    assert call_until_answered(address, GRPC_START_S).model_name == "iris"
    assert replacement in server.worker_pids(1)


def test_granian_workers_serve_grpc_too(start_server: Callable[..., RunningServer]) -> None:
    port = free_port()
    server = start_server("--grpc-port", str(port), "--server", "granian", workers=1)

    answer = call_until_answered(f"127.0.0.1:{port}", GRPC_START_S)

    assert answer.model_name == "iris"
    grpc_lines = [r for r in server.log_records() if r.get("protocol") == "grpc"]
    assert grpc_lines
    assert grpc_lines[-1]["status"] == 200


def test_a_graceful_stop_lets_a_call_in_progress_finish(grpc_served: tuple[RunningServer, str]) -> None:
    """Last in the module: it stops the server."""
    server, address = grpc_served
    request = pb.ModelInferRequest(model_name="slow")
    request.inputs.add(name="input", datatype="FP64", shape=[1, 1]).contents.fp64_contents.append(-2.0)
    channel, stub = fresh_stub(address)
    with channel:
        call_until_answered_with(stub, pb.ModelInferRequest(model_name="slow", inputs=[_row(1.0)]))
        in_progress = stub.ModelInfer.future(request, timeout=30)
        time.sleep(0.5)
        server.process.send_signal(signal.SIGTERM)

        answer = in_progress.result()

    assert answer.model_name == "slow"
    assert server.process.wait(timeout=30) == 0
    later, later_stub = fresh_stub(address)
    with later, pytest.raises(grpc.RpcError) as refused:
        later_stub.ServerLive(pb.ServerLiveRequest(), timeout=2)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


def _row(value: float) -> pb.ModelInferRequest.InferInputTensor:
    return pb.ModelInferRequest.InferInputTensor(
        name="input", datatype="FP64", shape=[1, 1], contents=pb.InferTensorContents(fp64_contents=[value])
    )


def call_until_answered_with(stub: pb_grpc.GRPCInferenceServiceStub, request: pb.ModelInferRequest) -> None:
    deadline = time.monotonic() + GRPC_START_S
    while True:
        try:
            stub.ModelInfer(request, timeout=5)
            return
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
