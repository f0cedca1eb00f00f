"""The gRPC service against an app's own server: the same answers, rules and refusals as REST.

Each test starts the gRPC server of a fresh app in this process (``grpc_server``)
and calls it through a real channel with the generated stub; REST answers come
from the same app's test client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from certificates import client_ca_and_certificate
from flaskserve.app import create_app
from flaskserve.errors import ConfigError
from flaskserve.rpc import codec, grpc_parts, servicer
from flaskserve.rpc.codec import parse_infer_request
from flaskserve.rpc.proto import grpc_predict_v2_pb2 as pb
from flaskserve.rpc.proto import grpc_predict_v2_pb2_grpc as pb_grpc
from flaskserve.security.keys import KeyStore
from flaskserve.security.tls import create_self_signed, server_tls
from flaskserve.settings import Settings
from flaskserve.testing import IRIS_FEATURES
from live_server import free_port
from metrics_text import labels, samples
from rpc.conftest import ServedOverGrpc

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3]]
#: Version 1 of iris answers with the species' names (version 2 with their numbers).
IRIS_NAMES = "1"
Start = Callable[..., ServedOverGrpc]


def typed_request(model: str = "iris", rows: list[list[float]] = ROWS, **fields: Any) -> pb.ModelInferRequest:
    fields.setdefault("model_version", IRIS_NAMES)
    request = pb.ModelInferRequest(model_name=model, **fields)
    tensor = request.inputs.add(name="input", datatype="FP64", shape=[len(rows), len(rows[0])])
    tensor.contents.fp64_contents.extend(np.ravel(rows).tolist())
    return request


def raw_request(
    model: str = "iris", rows: list[list[float]] = ROWS, datatype: str = "FP32"
) -> pb.ModelInferRequest:
    array = np.asarray(rows, dtype={"FP32": "<f4", "FP64": "<f8", "FP16": "<f2"}[datatype])
    request = pb.ModelInferRequest(
        model_name=model, model_version=IRIS_NAMES, raw_input_contents=[array.tobytes()]
    )
    request.inputs.add(name="input", datatype=datatype, shape=list(array.shape))
    return request


def output(response: pb.ModelInferResponse, name: str) -> np.ndarray:
    """An output decoded from raw_output_contents by its datatype and shape."""
    position = [o.name for o in response.outputs].index(name)
    tensor = response.outputs[position]
    raw = response.raw_output_contents[position]
    if tensor.datatype == "BYTES":
        values, offset = [], 0
        while offset < len(raw):
            size = int.from_bytes(raw[offset : offset + 4], "little")
            values.append(raw[offset + 4 : offset + 4 + size].decode())
            offset += 4 + size
        return np.array(values, dtype=object).reshape(tuple(tensor.shape))
    dtype = {"FP64": "<f8", "FP32": "<f4", "INT64": "<i8"}[tensor.datatype]
    return np.frombuffer(raw, dtype=dtype).reshape(tuple(tensor.shape))


def refusal(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def trailing(error: grpc.RpcError | grpc.Call) -> dict[str, Any]:
    return {item.key: item.value for item in error.trailing_metadata() or ()}


def test_health_and_metadata_rpcs(grpc_server: Start) -> None:
    stub = grpc_server().stub

    assert stub.ServerLive(pb.ServerLiveRequest()).live
    assert stub.ServerReady(pb.ServerReadyRequest()).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name="iris", version="2")).ready
    server = stub.ServerMetadata(pb.ServerMetadataRequest())
    assert server.name == "flaskserve"
    assert "classification" in server.extensions
    metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name="iris"))
    assert list(metadata.versions) == ["1", "2"]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [("input", "FP64", [-1, 4])]
    assert "predict_proba" in [t.name for t in metadata.outputs]


def test_typed_and_raw_tensors_answer_as_rest_does(grpc_server: Start) -> None:
    served = grpc_server()
    rest = served.app.test_client().post(
        "/v2/models/iris/versions/1/infer",
        json={"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64", "data": ROWS}]},
    )
    assert rest.status_code == 200
    expected = {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in rest.get_json()["outputs"]}

    typed = served.stub.ModelInfer(typed_request())
    raw = served.stub.ModelInfer(raw_request(model="iris", datatype="FP64"))

    for response in (typed, raw):
        assert response.model_name == "iris"
        assert list(output(response, "predict")) == list(expected["predict"]) == ["setosa", "virginica"]
        np.testing.assert_allclose(output(response, "predict_proba"), expected["predict_proba"])
    assert typed.model_version == "1"


def test_the_request_id_is_echoed_in_the_message_and_the_metadata(grpc_server: Start) -> None:
    stub = grpc_server().stub

    response, call = stub.ModelInfer.with_call(
        typed_request(id="order-17"), metadata=[("x-request-id", "abc-1")]
    )

    assert response.id == "order-17"
    assert trailing(call)["x-request-id"] == "abc-1"


def test_classification_and_chosen_outputs_are_honoured(grpc_server: Start) -> None:
    request = typed_request()
    wanted = request.outputs.add(name="predict")
    wanted.parameters["classification"].int64_param = 2

    response = grpc_server().stub.ModelInfer(request)

    assert [o.name for o in response.outputs] == ["predict"]
    top = output(response, "predict")
    assert top.shape == (2, 2)
    assert top[0, 0].endswith(":0:setosa")


def test_columns_by_feature_with_the_pd_content_type(grpc_server: Start) -> None:
    request = pb.ModelInferRequest(model_name="iris", model_version=IRIS_NAMES)
    request.parameters["content_type"].string_param = "pd"
    for position, feature in enumerate(IRIS_FEATURES):
        column = request.inputs.add(name=feature, datatype="FP64", shape=[2])
        column.contents.fp64_contents.extend([row[position] for row in ROWS])

    response = grpc_server().stub.ModelInfer(request)

    assert list(output(response, "predict")) == ["setosa", "virginica"]


@pytest.mark.parametrize(
    ("request_message", "named"),
    [
        pytest.param(
            pb.ModelInferRequest(
                model_name="iris",
                parameters={"content_type": pb.InferParameter(string_param="pd")},
                inputs=[
                    pb.ModelInferRequest.InferInputTensor(
                        name=name,
                        datatype="FP64",
                        shape=[1],
                        contents=pb.InferTensorContents(fp64_contents=[1.0]),
                    )
                    for name in IRIS_FEATURES[:3]
                ],
            ),
            "petal_width",
            id="a missing feature is named",
        ),
        pytest.param(typed_request(rows=[[1.0, 2.0, 3.0]]), "4", id="the wrong feature count"),
        pytest.param(
            pb.ModelInferRequest(
                model_name="iris",
                inputs=[pb.ModelInferRequest.InferInputTensor(name="input", datatype="FP16", shape=[1, 4])],
            ),
            "raw_input_contents",
            id="FP16 is raw only",
        ),
        pytest.param(
            pb.ModelInferRequest(
                model_name="iris",
                inputs=[
                    pb.ModelInferRequest.InferInputTensor(
                        name="input",
                        datatype="FP64",
                        shape=[1, 4],
                        contents=pb.InferTensorContents(int_contents=[1] * 4),
                    )
                ],
            ),
            "fp64_contents",
            id="values in the wrong contents field",
        ),
        pytest.param(pb.ModelInferRequest(), "model name", id="no model name"),
    ],
)
def test_invalid_requests_are_invalid_argument_naming_the_problem(
    grpc_server: Start, request_message: pb.ModelInferRequest, named: str
) -> None:
    error = refusal(lambda: grpc_server().stub.ModelInfer(request_message))

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert named in error.details()


def test_fp16_travels_raw(grpc_server: Start) -> None:
    response = grpc_server().stub.ModelInfer(raw_request(datatype="FP16"))

    assert list(output(response, "predict")) == ["setosa", "virginica"]


def test_unknown_model_and_version_are_not_found(grpc_server: Start) -> None:
    stub = grpc_server().stub

    for call in (
        lambda: stub.ModelInfer(typed_request(model="nope")),
        lambda: stub.ModelMetadata(pb.ModelMetadataRequest(name="iris", version="9")),
        lambda: stub.ModelReady(pb.ModelReadyRequest(name="nope")),
    ):
        error = refusal(call)
        assert error.code() is grpc.StatusCode.NOT_FOUND
        assert "nope" in error.details() or "9" in error.details()


def test_a_model_that_raises_is_internal_with_an_error_id_and_the_server_serves_on(
    grpc_server: Start, caplog: pytest.LogCaptureFixture
) -> None:
    stub = grpc_server().stub

    with caplog.at_level(logging.ERROR):
        error = refusal(lambda: stub.ModelInfer(typed_request(model="exploding", rows=[[-1.0, 2.0]])))

    assert error.code() is grpc.StatusCode.INTERNAL
    error_id = trailing(error)["x-error-id"]
    assert error_id in error.details()
    assert any(getattr(r, "error_id", None) == error_id for r in caplog.records)
    answer = stub.ModelInfer(typed_request(model="exploding", rows=[[1.0, 2.0]]))
    assert output(answer, "predict").tolist() == [3.0]


def test_a_message_over_the_body_limit_is_refused(grpc_server: Start) -> None:
    stub = grpc_server(limits={"max_body_bytes": 1024}).stub

    error = refusal(lambda: stub.ModelInfer(typed_request(rows=[[1.0, 2.0, 3.0, 4.0]] * 100)))

    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


def _keyed(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    keys_file = tmp_path / "keys.json"
    store = KeyStore.load(keys_file)
    keys = {
        scope: store.create(scope.replace(":", "-"), [scope])
        for scope in ("predict", "predict:linear", "read", "admin")
    }
    store.save()
    return keys_file, keys


RPCS: list[tuple[str, Callable[[pb_grpc.GRPCInferenceServiceStub], Any], str | None]] = [
    ("ServerLive", lambda s: s.ServerLive(pb.ServerLiveRequest()), None),
    ("ServerReady", lambda s: s.ServerReady(pb.ServerReadyRequest()), None),
    ("ModelReady", lambda s: s.ModelReady(pb.ModelReadyRequest(name="iris")), None),
    ("ServerMetadata", lambda s: s.ServerMetadata(pb.ServerMetadataRequest()), "read"),
    ("ModelMetadata", lambda s: s.ModelMetadata(pb.ModelMetadataRequest(name="iris")), "read"),
    ("ModelInfer", lambda s: s.ModelInfer(typed_request()), "predict"),
    ("RepositoryIndex", lambda s: s.RepositoryIndex(pb.RepositoryIndexRequest()), "read"),
    (
        "RepositoryModelLoad",
        lambda s: s.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="linear")),
        "admin",
    ),
    (
        "RepositoryModelUnload",
        lambda s: s.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="linear")),
        "admin",
    ),
]


@pytest.mark.parametrize(("rpc", "call", "scope"), RPCS, ids=[rpc for rpc, _, _ in RPCS])
def test_every_rpc_checks_keys_and_scopes_as_its_rest_twin(
    grpc_server: Start, tmp_path: Path, rpc: str, call: Callable[[Any], Any], scope: str | None
) -> None:
    keys_file, keys = _keyed(tmp_path)
    stub = grpc_server(keys_file=keys_file).stub

    def with_metadata(*metadata: tuple[str, str]) -> Any:
        class Keyed:
            def __getattr__(self, name: str) -> Any:
                method = getattr(stub, name)
                return lambda message: method(message, metadata=metadata)

        return call(Keyed())

    if scope is None:
        with_metadata()  # a probe: open to anyone
        return
    assert refusal(lambda: with_metadata()).code() is grpc.StatusCode.UNAUTHENTICATED
    bad = refusal(lambda: with_metadata(("authorization", "Bearer not-a-key")))
    assert bad.code() is grpc.StatusCode.UNAUTHENTICATED
    wrong = "predict:linear" if scope != "predict" else "read"
    forbidden = refusal(lambda: with_metadata(("x-api-key", keys[wrong])))
    assert forbidden.code() is grpc.StatusCode.PERMISSION_DENIED
    assert scope in forbidden.details()
    with_metadata(("authorization", f"Bearer {keys[scope]}"))
    if rpc == "RepositoryModelUnload":  # served again, so that the second spelling has something to unload
        load = pb.RepositoryModelLoadRequest(model_name="linear")
        stub.RepositoryModelLoad(load, metadata=(("x-api-key", keys["admin"]),))
    with_metadata(("x-api-key", keys[scope]))


def test_a_rate_limit_is_resource_exhausted_with_retry_info(grpc_server: Start) -> None:
    stub = grpc_server(rate_limit="2/minute").stub
    stub.ModelInfer(typed_request())
    stub.ModelInfer(typed_request())

    error = refusal(lambda: stub.ModelInfer(typed_request()))

    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "2 per minute" in error.details()
    metadata = trailing(error)
    assert 1 <= int(metadata["retry-after"]) <= 60
    status = status_pb2.Status.FromString(metadata["grpc-status-details-bin"])
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry)
    assert retry.retry_delay.seconds == int(metadata["retry-after"])


def test_grpc_requests_are_counted_and_logged_as_grpc(
    grpc_server: Start, caplog: pytest.LogCaptureFixture
) -> None:
    served = grpc_server()
    with caplog.at_level(logging.INFO, logger="flaskserve.access"):
        served.stub.ModelInfer(typed_request())
        refusal(lambda: served.stub.ModelInfer(typed_request(model="nope")))

    text = served.app.test_client().get("/metrics").get_data(as_text=True)
    counted = samples(text, "flaskserve_requests_total")
    methods = "decision_function,predict,predict_log_proba,predict_proba"
    assert counted[labels(model="iris", version="1", protocol="grpc", method=methods, status="200")] == 1
    assert counted[labels(model="unknown", version="", protocol="grpc", method="", status="404")] == 1
    lines = [r for r in caplog.records if r.name == "flaskserve.access"]
    assert [(r.protocol, r.status) for r in lines] == [("grpc", 200), ("grpc", 404)]


def test_health_service_and_reflection(grpc_server: Start) -> None:
    channel = grpc_server().channel

    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "inference.GRPCInferenceService"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = list(
        reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    )
    services = {s.name for s in answers[0].list_services_response.service}
    assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= services


def test_tls_and_mutual_tls(grpc_server: Start, tmp_path: Path) -> None:
    certificate = create_self_signed(tmp_path / "server")
    ca_file, client_cert, client_key = client_ca_and_certificate(tmp_path)
    tls = server_tls(
        certfile=certificate.certfile, keyfile=certificate.keyfile, ca_certs=ca_file, self_signed_dir=None
    )
    served = grpc_server(tls=tls)
    target = f"localhost:{served.server.port}"
    trusted = certificate.certfile.read_bytes()

    with grpc.secure_channel(
        target,
        grpc.ssl_channel_credentials(trusted, client_key.read_bytes(), client_cert.read_bytes()),
    ) as channel:
        assert pb_grpc.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(), timeout=10).live
    with grpc.secure_channel(target, grpc.ssl_channel_credentials(trusted)) as channel:
        error = refusal(
            lambda: pb_grpc.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(), timeout=10)
        )
        assert error.code() is grpc.StatusCode.UNAVAILABLE
    error = refusal(lambda: served.stub.ServerLive(pb.ServerLiveRequest(), timeout=10))
    assert error.code() is grpc.StatusCode.UNAVAILABLE


def test_a_public_address_without_keys_is_refused_before_any_grpc_port_opens(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(host="0.0.0.0", grpc_port=free_port(), keys_file=tmp_path / "keys.json")
    protocols, _ = grpc_parts(settings)

    with pytest.raises(ConfigError, match="keys"):
        create_app(settings, protocols=protocols)


def test_grpc_and_http_requests_share_the_cache(grpc_server: Start) -> None:
    served = grpc_server(cache_size=16)
    rest = served.app.test_client().post(
        "/v2/models/iris/versions/1/infer",
        json={
            "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64", "data": ROWS}],
            "outputs": [{"name": "predict"}],
        },
    )
    assert rest.headers["X-Cache"] == "MISS"
    request = typed_request()
    request.outputs.add(name="predict")

    served.stub.ModelInfer(request)

    text = served.app.test_client().get("/metrics").get_data(as_text=True)
    lookups = samples(text, "flaskserve_cache_lookups_total")
    assert lookups[labels(model="iris", version="1", result="hit")] == 1


#: Sleeps for minus the smallest input of its batch (in seconds), so that a batch can be held in the model.
SLEEPING_MODEL = """
import time

import numpy as np


class Model:
    feature_names_in_ = ["x"]

    def predict(self, features):
        time.sleep(max(0.0, -float(np.min(features[:, 0]))))
        return 2 * features[:, 0]
"""


def sleepy_repository(root: Path) -> dict[str, Any]:
    """Settings that serve the sleeping model alone, from ``root``."""
    (root / "sleepy" / "1").mkdir(parents=True)
    (root / "sleepy" / "1" / "model.py").write_text(SLEEPING_MODEL, encoding="utf-8")
    return {"model_path": root, "default_model": "sleepy", "allow_code": True}


def sleepy_request(value: float) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="sleepy")
    request.inputs.add(name="input", datatype="FP64", shape=[1, 1]).contents.fp64_contents.append(value)
    return request


def test_a_stop_refuses_new_calls_at_once_and_lets_the_call_in_progress_finish(
    grpc_server: Start, tmp_path: Path
) -> None:
    served = grpc_server(**sleepy_repository(tmp_path))
    in_progress = served.stub.ModelInfer.future(sleepy_request(-0.8), timeout=10)
    time.sleep(0.2)

    stopped = served.server.begin_stop(5)

    assert not stopped.is_set(), "begin_stop waited for the call in progress"
    with grpc.insecure_channel(served.address) as channel:
        later = pb_grpc.GRPCInferenceServiceStub(channel)
        assert refusal(lambda: later.ServerLive(pb.ServerLiveRequest(), timeout=2)).code() is (
            grpc.StatusCode.UNAVAILABLE
        )
    assert output(in_progress.result(), "predict").tolist() == [-1.6]
    assert stopped.wait(5)
    assert served.server.begin_stop() is stopped


def test_grpc_and_http_requests_share_batches(
    grpc_server: Start, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """While a REST request holds the model, a REST and a gRPC request queue up and run as one batch."""
    served = grpc_server(**sleepy_repository(tmp_path), max_batch_size=8, max_batch_delay_ms=0)
    http = served.app.test_client()

    def rest_call(value: float) -> Any:
        body = {"inputs": [{"name": "input", "shape": [1, 1], "datatype": "FP64", "data": [value]}]}
        return http.post("/v2/models/sleepy/infer", json=body).get_json()["outputs"][0]["data"]

    def grpc_call(value: float) -> Any:
        return output(served.stub.ModelInfer(sleepy_request(value), timeout=10), "predict").tolist()

    with caplog.at_level(logging.INFO, logger="flaskserve.access"), ThreadPoolExecutor(3) as pool:
        holding = pool.submit(rest_call, -0.6)
        time.sleep(0.2)
        rest, grpc_answer = pool.submit(rest_call, 3.0), pool.submit(grpc_call, 4.0)
        assert (holding.result(), rest.result(), grpc_answer.result()) == ([-1.2], [6.0], [8.0])

    text = http.get("/metrics").get_data(as_text=True)
    batch = labels(model="sleepy", version="1")
    assert samples(text, "flaskserve_batch_requests_count")[batch] == 2
    assert samples(text, "flaskserve_batch_requests_sum")[batch] == 3
    lines = [r for r in caplog.records if r.name == "flaskserve.access"]
    assert sorted((r.protocol, r.batch_rows) for r in lines) == [("grpc", 2), ("v2", 1), ("v2", 2)]


def test_an_infer_message_is_parsed_once(grpc_server: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[bytes] = []

    def counting_parse(body: bytes) -> pb.ModelInferRequest:
        parsed.append(body)
        return parse_infer_request(body)

    monkeypatch.setattr(codec, "parse_infer_request", counting_parse)
    monkeypatch.setattr(servicer, "parse_infer_request", counting_parse)
    served = grpc_server()

    answer = served.stub.ModelInfer(typed_request())

    assert output(answer, "predict").tolist() == ["setosa", "virginica"]
    assert parsed == [typed_request().SerializeToString()]
