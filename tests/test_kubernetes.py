"""Every Kubernetes manifest in deploy/ is valid against the Kubernetes OpenAPI schemas, offline.

``kubernetes-validate`` ships the schemas of each Kubernetes release; validation is
strict (an unknown field, e.g. a misspelling, is an error). KServe's resources are
custom resources, not in those schemas: tests/test_kserve.py reads them against the
fields KServe documents, and validates their containers here as a Pod's.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import requests
import tomllib
import yaml

from flaskserve import testing
from flaskserve.security.keys import KeyStore
from live_server import free_port
from pod import pod_network, wait_ready
from redis_server import RedisServer

DEPLOY = Path(__file__).parents[1] / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
#: The oldest Kubernetes release the manifests are checked against (still in support upstream).
OLDEST = "1.31"


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def validate(manifest: dict[str, Any]) -> None:
    for version in (OLDEST, kubernetes_validate.latest_version()):
        kubernetes_validate.validate(manifest, version, strict=True)


MANIFESTS = [
    pytest.param(document, id=f"{path.name}: {document['kind']} {document['metadata']['name']}")
    for path in sorted(KUBERNETES.glob("*.yaml"))
    if path.name != "kustomization.yaml"
    for document in documents(path)
]


@pytest.mark.parametrize("manifest", MANIFESTS)
def test_a_manifest_is_valid_for_kubernetes(manifest: dict[str, Any]) -> None:
    validate(manifest)


def test_a_misspelled_field_is_caught() -> None:
    broken = deployment()
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {
        "httpGet": {"path": "/", "port": 1}
    }

    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        validate(broken)


def test_the_kustomization_composes_every_manifest() -> None:
    [kustomization] = documents(KUBERNETES / "kustomization.yaml")
    manifests = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}

    assert set(kustomization["resources"]) == manifests


def deployment() -> dict[str, Any]:
    [found] = [d for d in documents(KUBERNETES / "flaskserve.yaml") if d["kind"] == "Deployment"]
    return found


def test_the_deployment_runs_locked_down_and_bounded() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    [container] = pod["containers"]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    # The run directory is the pod's own writable /tmp, never a shared volume.
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp["name"])


def test_the_pod_drains_before_it_stops_and_has_time_to_finish() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    drain_delay_s = float(env["FLASKSERVE_DRAIN_DELAY_S"])

    assert drain_delay_s >= 5  # endpoint removal takes a few seconds to reach every proxy
    assert "lifecycle" not in container  # a preStop pause would add to the delay
    assert pod["terminationGracePeriodSeconds"] > drain_delay_s + 30  # then the longest graceful stop


def test_the_keys_come_from_a_secret() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    [container] = pod["containers"]
    keys = next(m for m in container["volumeMounts"] if m["mountPath"] == "/etc/flaskserve/keys")

    assert "secret" in next(v for v in pod["volumes"] if v["name"] == keys["name"])


# -- the Deployment's command, run as the pod runs it ----------------------------------------------------


def config_map() -> dict[str, str]:
    [found] = [d for d in documents(KUBERNETES / "flaskserve.yaml") if d["kind"] == "ConfigMap"]
    data: dict[str, str] = found["data"]
    return data


def image() -> tuple[list[str], dict[str, str]]:
    """The image's entrypoint and environment, read from the Dockerfile's last stage."""
    lines = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ").splitlines()
    final = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    [entrypoint] = [
        json.loads(line.removeprefix("ENTRYPOINT ")) for line in final if line.startswith("ENTRYPOINT")
    ]
    env: dict[str, str] = {}
    for line in final:
        if line.startswith("ENV "):
            env.update(pair.split("=", 1) for pair in shlex.split(line.removeprefix("ENV ")))
    return entrypoint, env


@pytest.mark.e2e
def test_the_deployments_command_serves_and_drains_as_the_pod_would(
    tmp_path: Path, iris_classifier: Any
) -> None:
    """The image's entrypoint with the container's args and environment, over the volumes the pod mounts.

    The mounts are folders of the test, named where the pod mounts them (the path
    in every argument, variable and config line is mapped to its folder); Redis is
    a server of the test's own in the pod's namespace, where the Service name
    ``redis`` is mapped to its address. The image's user and read-only root are
    checked as text above: there is no container engine with images here.
    """
    container = deployment()["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["mountPath"]: tmp_path / "volumes" / m["name"] for m in container["volumeMounts"]}
    with pod_network("d") as pod:
        redis = RedisServer(tmp_path, pod.address, free_port(), prefix=pod.command())
        redis.start()

        # One pass, longest path first, so that a folder put in is never mapped again.
        mounted = re.compile(
            r"(?<![\w/])("
            + "|".join(re.escape(m) for m in sorted(mounts, key=len, reverse=True))
            + r")(?![\w-])"
        )

        def in_pod(text: str) -> str:
            text = mounted.sub(lambda found: str(mounts[found.group(1)]), text)
            return text.replace("redis://redis:6379", f"redis://{pod.address}:{redis.port}")

        testing.write_repository(mounts["/models"], {"iris": {"1": (iris_classifier, ".skops")}})
        config = mounts["/etc/flaskserve"] / "flaskserve.toml"
        config.parent.mkdir(parents=True)
        for name, text in config_map().items():
            (mounts["/etc/flaskserve"] / name).write_text(in_pod(text), encoding="utf-8")
        keys_file = Path(tomllib.loads(config.read_text(encoding="utf-8"))["keys_file"])  # already mapped
        keys_file.parent.mkdir(parents=True)
        store = KeyStore.load(keys_file)
        key = store.create("client", ["predict", "metrics"])
        store.save()
        mounts["/tmp"].mkdir(parents=True, exist_ok=True)

        entrypoint, image_env = image()
        env = {**image_env, **{item["name"]: item["value"] for item in container["env"]}}
        argv = [*entrypoint, *(in_pod(arg) for arg in container["args"])]
        assert argv[0] == "flaskserve"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("FLASKSERVE_")}
        log = tmp_path / "pod.log"
        port = container["ports"][0]["containerPort"]
        url = f"http://{pod.address}:{port}"
        with log.open("wb") as output:
            process = subprocess.Popen(
                pod.command(sys.executable, "-m", "flaskserve", *argv[1:]),
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**clean, **{k: in_pod(v) for k, v in env.items()}, "TMPDIR": str(mounts["/tmp"])},
            )
        try:
            probes = {
                kind: container[f"{kind}Probe"]["httpGet"]["path"] for kind in ("liveness", "readiness")
            }
            wait_ready(url, process, log, probes["readiness"])
            headers = {"Authorization": f"Bearer {key}"}
            row = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
            anonymous = requests.post(url + "/models/iris/predict", json=row, timeout=10)
            answer = requests.post(url + "/models/iris/predict", json=row, headers=headers, timeout=10)
            metrics = requests.get(url + "/metrics", headers=headers, timeout=10).text

            process.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            draining = requests.get(url + probes["readiness"], timeout=5).status_code
            live = requests.get(url + probes["liveness"], timeout=5).status_code
            served = requests.post(url + "/models/iris/predict", json=row, headers=headers, timeout=10)
        finally:
            process.kill()
            process.wait(timeout=30)
            redis.stop()

    assert anonymous.status_code == 401
    assert answer.status_code == 200, answer.text
    frame, _ = testing.iris_frame()
    assert answer.json()["predictions"] == iris_classifier.predict(frame.iloc[:1]).tolist()
    assert "flaskserve_requests_total" in metrics
    assert (draining, live, served.status_code) == (503, 200, 200)
