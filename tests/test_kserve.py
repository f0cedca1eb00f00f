"""flaskserve as a KServe serving runtime: the resources hold what KServe documents, and the command works.

KServe's resources are custom resources: their fields are read here against the
ones KServe's API reference documents (``ServingRuntimeSpec``,
``SupportedModelFormat``, the ``InferenceService`` predictor), and their container
is validated as a Pod's against the Kubernetes schemas. Last, ``flaskserve serve``
is started with exactly the runtime's arguments and environment, on a host of
its own (a network namespace, so it binds 0.0.0.0:8080 and 0.0.0.0:8081 as in the
pod), serving a folder laid out as KServe's storage initializer leaves
``/mnt/models``, and answers over V1, V2 and V2 over gRPC.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import kubernetes_validate
import pytest
import requests
import yaml
from flask import Flask

from flaskserve import testing
from flaskserve.rpc.proto import grpc_predict_v2_pb2 as pb
from flaskserve.rpc.proto import grpc_predict_v2_pb2_grpc as pb_grpc
from pod import pod_network, wait_ready

KSERVE = Path(__file__).parents[1] / "deploy" / "kserve"
#: ``ServingRuntimeSpec`` in KServe's API reference (serving.kserve.io/v1alpha1).
SERVING_RUNTIME_FIELDS = {
    "supportedModelFormats", "multiModel", "disabled", "protocolVersions", "affinity", "nodeSelector",
    "tolerations", "labels", "annotations", "volumes", "imagePullSecrets", "containers", "hostIPC",
    "grpcEndpoint", "grpcDataEndpoint", "httpDataEndpoint", "replicas", "storageHelper", "builtInAdapter",
    "workerSpec",
}  # fmt: skip
SUPPORTED_MODEL_FORMAT_FIELDS = {"name", "version", "autoSelect", "priority"}
PROTOCOL_VERSIONS = {"v1", "v2", "grpc-v1", "grpc-v2"}
#: The container name KServe looks for, the folder its storage initializer fills, the port it routes to.
KSERVE_CONTAINER = "kserve-container"
MODEL_MOUNT = "/mnt/models"
KSERVE_PORT = 8080
#: KServe's gRPC port (its Python server's and the docs' grpc-v2 examples), named h2c for Knative.
KSERVE_GRPC_PORT = 8081
#: ``PredictorSpec`` fields of an InferenceService used here, and the ``ModelSpec`` ones.
PREDICTOR_FIELDS = {"model", "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "serviceAccountName"}
MODEL_SPEC_FIELDS = {
    "modelFormat", "runtime", "protocolVersion", "storageUri", "env", "resources", "args", "ports",
}  # fmt: skip
#: The extras that bring each format's framework, and gRPC, into the image.
IMAGE_EXTRAS = {"xgboost", "lightgbm", "onnx", "grpc"}
FORMATS = {"sklearn", "xgboost", "lightgbm", "onnx"}


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((KSERVE / name).read_text(encoding="utf-8")) if d]


def cluster_runtime() -> dict[str, Any]:
    [runtime] = documents("cluster-serving-runtime.yaml")
    return runtime


def runtime_container() -> dict[str, Any]:
    [container] = cluster_runtime()["spec"]["containers"]
    return container


def test_the_cluster_runtime_holds_only_documented_fields() -> None:
    runtime = cluster_runtime()

    assert (runtime["apiVersion"], runtime["kind"]) == ("serving.kserve.io/v1alpha1", "ClusterServingRuntime")
    assert runtime["metadata"]["name"] == "kserve-flaskserve"
    assert set(runtime["spec"]) <= SERVING_RUNTIME_FIELDS
    assert set(runtime["spec"]["protocolVersions"]) <= PROTOCOL_VERSIONS
    assert {"v1", "v2", "grpc-v2"} <= set(runtime["spec"]["protocolVersions"])


def test_the_runtime_is_chosen_by_model_format() -> None:
    formats = cluster_runtime()["spec"]["supportedModelFormats"]

    assert all(set(entry) <= SUPPORTED_MODEL_FORMAT_FIELDS for entry in formats)
    assert {entry["name"] for entry in formats} == FORMATS
    assert all(entry["autoSelect"] is True and entry["priority"] >= 1 for entry in formats)


def test_the_namespaced_runtime_is_the_cluster_one_under_another_kind() -> None:
    [namespaced] = documents("serving-runtime.yaml")
    cluster = cluster_runtime()

    assert (namespaced["kind"], namespaced["metadata"]["name"]) == ("ServingRuntime", "flaskserve")
    assert namespaced["spec"] == cluster["spec"]


def test_the_container_is_a_valid_pod_container() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "runtime"}, "spec": {"containers": []}}
    pod["spec"]["containers"] = [runtime_container()]

    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)


def test_the_container_serves_the_mounted_model_on_kserves_port(app: Flask) -> None:
    container = runtime_container()
    rules = {rule.rule for rule in app.url_map.iter_rules()}

    assert container["name"] == KSERVE_CONTAINER
    assert container["args"][0] == MODEL_MOUNT
    assert "{{.Name}}" in container["args"]
    assert [p["containerPort"] for p in container["ports"]] == [KSERVE_PORT]
    assert (
        {container[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe")}
        == {
            "/v2/health/ready",
            "/v2/health/live",
        }
        <= rules
    )


def test_grpc_v2_is_served_on_kserves_grpc_port_and_the_image_brings_it() -> None:
    args = runtime_container()["args"]
    grpc_services = [
        s
        for s in documents("inference-services.yaml")
        if s["spec"]["predictor"]["model"].get("protocolVersion") == "grpc-v2"
    ]
    dockerfile = (KSERVE.parent / "Dockerfile").read_text(encoding="utf-8")
    [extras] = re.findall(r"pip install [^\n]*'\.\[([a-z,]+)\]'", dockerfile)

    assert args[args.index("--grpc-port") + 1] == str(KSERVE_GRPC_PORT)
    assert grpc_services
    for service in grpc_services:
        # Knative routes one port per revision: a grpc-v2 service names the gRPC one, as h2c.
        assert service["spec"]["predictor"]["model"]["ports"] == [
            {"name": "h2c", "containerPort": KSERVE_GRPC_PORT, "protocol": "TCP"}
        ]
    assert set(extras.split(",")) >= IMAGE_EXTRAS


def test_the_inference_services_ask_for_formats_the_runtime_serves() -> None:
    services = documents("inference-services.yaml")

    assert services
    for service in services:
        assert (service["apiVersion"], service["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
        predictor = service["spec"]["predictor"]
        assert set(predictor) <= PREDICTOR_FIELDS
        assert set(predictor["model"]) <= MODEL_SPEC_FIELDS
        assert predictor["model"]["modelFormat"]["name"] in FORMATS
        assert predictor["model"].get("runtime", "kserve-flaskserve") == "kserve-flaskserve"


# -- the command line, run as the pod runs it ------------------------------------------------


@pytest.fixture
def pod_host() -> Iterator[Any]:
    """A network namespace of its own, where the server may bind 0.0.0.0:8080 as in the pod."""
    with pod_network("k") as host:
        yield host


def raw_strings(raw: bytes) -> list[str]:
    """A raw BYTES tensor: each element its 4-byte little-endian length, then its bytes."""
    strings, offset = [], 0
    while offset < len(raw):
        size = int.from_bytes(raw[offset : offset + 4], "little")
        strings.append(raw[offset + 4 : offset + 4 + size].decode())
        offset += 4 + size
    return strings


def grpc_infer(address: str, row: list[float]) -> pb.ModelInferResponse:
    """One ModelInfer call; the workers open the gRPC port a moment after HTTP answers."""
    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="input", datatype="FP64", shape=[1, len(row)]).contents.fp64_contents.extend(row)
    deadline = time.monotonic() + 20
    while True:
        with grpc.insecure_channel(address) as channel:
            try:
                answer: pb.ModelInferResponse = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
                    request, timeout=5
                )
                return answer
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
        time.sleep(0.1)


@pytest.mark.e2e
def test_the_runtime_command_serves_a_pinned_pickle_from_the_storage_layout(
    pod_host: Any, tmp_path: Path, iris_classifier: Any
) -> None:
    # What the storage initializer leaves: the model file itself, directly in the mounted folder.
    mounted = tmp_path / "mnt-models"
    model_file = testing.save_model(iris_classifier, mounted / "model.joblib")
    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()
    container = runtime_container()
    args = [str(mounted) if a == MODEL_MOUNT else a.replace("{{.Name}}", "iris") for a in container["args"]]
    env = {item["name"]: item["value"] for item in container["env"]}
    # As the InferenceService example pins its pickle.
    env["FLASKSERVE_TRUSTED_SHA256"] = json.dumps([digest])
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLASKSERVE_")}
    log = tmp_path / "runtime.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            pod_host.command(sys.executable, "-m", "flaskserve", "serve", *args),
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**clean, **env, "TMPDIR": str(tmp_path)},
        )
    url = f"http://{pod_host.address}:{KSERVE_PORT}"
    try:
        wait_ready(url, process, log)
        v1 = requests.post(
            url + "/v1/models/iris:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]}, timeout=10
        )
        v2 = requests.post(
            url + "/v2/models/iris/infer",
            json={
                "inputs": [
                    {"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}
                ]
            },
            timeout=10,
        )
        over_grpc = grpc_infer(f"{pod_host.address}:{KSERVE_GRPC_PORT}", [5.1, 3.5, 1.4, 0.2])
    finally:
        process.terminate()
        process.wait(timeout=30)

    frame, _ = testing.iris_frame()
    assert v1.status_code == 200, v1.text
    assert v1.json()["predictions"] == iris_classifier.predict(frame.iloc[:1]).tolist()
    assert v2.status_code == 200, v2.text
    assert v2.json()["model_name"] == "iris"
    assert over_grpc.model_name == "iris"
    [predicted] = [i for i, output in enumerate(over_grpc.outputs) if output.name == "predict"]
    assert over_grpc.outputs[predicted].datatype == "BYTES"
    assert raw_strings(over_grpc.raw_output_contents[predicted]) == v1.json()["predictions"]
