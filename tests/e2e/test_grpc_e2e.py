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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
#: How long the calls in progress during a graceful stop take.
SLOW_CALL_S = 3.0
#: New calls tried (each on a connection of its own) during a graceful stop.
REFUSED_CALLS = 6

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


def write_every_format(root: Path, iris_classifier: Any) -> None:
    """Iris in each further format a loader serves (the ``test`` extra installs them all), trained here."""
    import lightgbm as lgb
    import xgboost as xgb
    from skl2onnx import to_onnx

    frame, labels = testing.iris_frame()
    classes = np.unique(labels, return_inverse=True)[1]
    testing.save_model(iris_classifier, root / "iris-joblib" / "1" / "model.joblib")
    features = frame.to_numpy(dtype=np.float32)
    converted = to_onnx(testing.train_iris_classifier().fit(features, labels), features[:1])
    (root / "iris-onnx" / "1").mkdir(parents=True)
    (root / "iris-onnx" / "1" / "model.onnx").write_bytes(converted.SerializeToString())
    booster = xgb.train(
        {"objective": "multi:softprob", "num_class": 3, "nthread": 1}, xgb.DMatrix(frame, classes), 5
    )
    (root / "iris-xgboost" / "1").mkdir(parents=True)
    booster.save_model(str(root / "iris-xgboost" / "1" / "model.ubj"))
    trained = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1},
        lgb.Dataset(frame, classes),
        5,
    )
    (root / "iris-lightgbm" / "1").mkdir(parents=True)
    trained.save_model(str(root / "iris-lightgbm" / "1" / "model.lgb.txt"))


@pytest.fixture(scope="module")
def grpc_repository(iris_classifier: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """iris in every format, and a model that sleeps for minus its input (in seconds)."""
    root = testing.write_repository(
        tmp_path_factory.mktemp("grpc-models"), {"iris": {"1": (iris_classifier, ".skops")}}
    )
    (root / "slow" / "1").mkdir(parents=True)
    (root / "slow" / "1" / "model.py").write_text(SLOW_MODEL, encoding="utf-8")
    write_every_format(root, iris_classifier)
    return root


@pytest.fixture(scope="module")
def grpc_served(
    grpc_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, str]]:
    """Two gunicorn workers serving the gRPC repository."""
    launcher = ServerLauncher(grpc_repository, tmp_path_factory.mktemp("grpc-server"))
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


def test_tritonclient_grpc_agrees_with_rest_for_every_model_format(
    grpc_served: tuple[RunningServer, str], grpc_repository: Path
) -> None:
    server, address = grpc_served
    models = sorted(path.name for path in grpc_repository.iterdir())
    completed = subprocess.run(
        [sys.executable, str(CLIENT), address, "--models", ",".join(models)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode()
    found: dict[str, Any] = json.loads(completed.stdout)["models"]

    assert set(found) == {"iris", "iris-joblib", "iris-lightgbm", "iris-onnx", "iris-xgboost", "slow"}
    for model, answer in found.items():
        tensor = answer["input"]
        columns = len(ROWS[0]) if model != "slow" else 1
        rows = [row[:columns] for row in ROWS]
        rest = server.post(
            f"/v2/models/{model}/infer",
            json={"inputs": [{**tensor, "shape": [len(rows), columns], "data": rows}]},
        ).json()
        expected = {o["name"]: o["data"] for o in rest["outputs"]}
        assert answer["outputs"].keys() == expected.keys(), model
        for name, values in expected.items():
            if isinstance(values[0], str):
                assert answer["outputs"][name] == values, (model, name)
            else:
                np.testing.assert_allclose(answer["outputs"][name], values, rtol=1e-6, err_msg=model)


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


def test_granian_workers_serve_grpc_and_drain_it_on_a_graceful_stop(
    grpc_repository: Path, tmp_path: Path
) -> None:
    launcher = ServerLauncher(grpc_repository, tmp_path)
    port = free_port()
    address = f"127.0.0.1:{port}"
    try:
        server = launcher.start(
            "--grpc-port",
            str(port),
            "--allow-code",
            "--default-model",
            "iris",
            "--server",
            "granian",
            workers=1,
        )
        answer = call_until_answered(address, GRPC_START_S)
        assert answer.model_name == "iris"
        records = server.log_records_once(lambda lines: any(r.get("protocol") == "grpc" for r in lines))
        grpc_lines = [r for r in records if r.get("protocol") == "grpc"]
        assert grpc_lines
        assert grpc_lines[-1]["status"] == 200

        assert_a_graceful_stop_drains_grpc(server, address)
    finally:
        launcher.stop_all()


def test_a_graceful_stop_refuses_new_calls_at_once_and_lets_those_in_progress_finish(
    grpc_served: tuple[RunningServer, str],
) -> None:
    """Last in the module: it stops the server."""
    assert_a_graceful_stop_drains_grpc(*grpc_served)


def assert_a_graceful_stop_drains_grpc(server: RunningServer, address: str) -> None:
    """TERM while an HTTP request and a gRPC call run: new calls are refused, both finish, exit 0.

    The HTTP request in progress keeps its worker alive through the drain, so a
    gRPC server that stopped only with its worker would still take new calls.
    """
    channel, stub = fresh_stub(address)
    with channel, ThreadPoolExecutor(max_workers=1) as http:
        stub.ModelInfer(slow_request(0.0), timeout=GRPC_START_S)
        in_progress = stub.ModelInfer.future(slow_request(-SLOW_CALL_S), timeout=30)
        http_in_progress = http.submit(
            server.post,
            "/v2/models/slow/infer",
            json={"inputs": [{"name": "input", "shape": [1, 1], "datatype": "FP64", "data": [-SLOW_CALL_S]}]},
        )
        wait_until_in_flight(server, 2)
        server.process.send_signal(signal.SIGTERM)

        refusals = refused_new_calls(address, REFUSED_CALLS)
        still_running = (not in_progress.done(), not http_in_progress.done())
        answer = in_progress.result()
        http_answer = http_in_progress.result()

    # The first refusal may race the port's closing: a call whose connection the server took just
    # before it closed is cancelled by the stopping server instead; every later one finds the port closed.
    assert refusals[0] in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    assert refusals[1:] == [grpc.StatusCode.UNAVAILABLE] * (REFUSED_CALLS - 1)
    assert still_running == (True, True), "the calls in progress (gRPC, HTTP) should outlast the refusals"
    assert answer.model_name == "slow"
    assert http_answer.status_code == 200
    assert server.process.wait(timeout=30) == 0
    later, later_stub = fresh_stub(address)
    with later, pytest.raises(grpc.RpcError) as refused:
        later_stub.ServerLive(pb.ServerLiveRequest(), timeout=2)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


def wait_until_in_flight(server: RunningServer, count: int) -> None:
    """Wait until ``count`` requests (HTTP or gRPC) are in progress, besides the one that asks."""
    deadline = time.monotonic() + 10
    while True:
        in_flight = sum(samples(server.get("/metrics").text, "flaskserve_requests_in_flight").values())
        if in_flight - 1 >= count:
            return
        assert time.monotonic() < deadline, f"{in_flight - 1} requests in progress, not {count}"
        time.sleep(0.05)


def refused_new_calls(address: str, count: int) -> list[grpc.StatusCode]:
    """Wait (briefly) for the first refused call on a new connection, then ``count`` more; their codes.

    Each call has a connection of its own, so with two workers the kernel hands
    them to both.
    """
    deadline = time.monotonic() + 1.0
    codes: list[grpc.StatusCode] = []
    while len(codes) < count:
        channel, stub = fresh_stub(address)
        with channel:
            try:
                stub.ServerLive(pb.ServerLiveRequest(), timeout=1)
            except grpc.RpcError as error:
                codes.append(error.code())
                continue
        assert not codes, "a new call was answered after a refusal"
        assert time.monotonic() < deadline, "new calls were still answered a second after TERM"
        time.sleep(0.02)
    return codes


def slow_request(value: float) -> pb.ModelInferRequest:
    """A call to the slow model, which sleeps ``-value`` seconds."""
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="input", datatype="FP64", shape=[1, 1], contents=pb.InferTensorContents(fp64_contents=[value])
    )
    return pb.ModelInferRequest(model_name="slow", inputs=[tensor])
