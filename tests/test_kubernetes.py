"""Every Kubernetes manifest in deploy/ is valid against the Kubernetes OpenAPI schemas, offline.

``kubernetes-validate`` ships the schemas of each Kubernetes release; validation is
strict (an unknown field, e.g. a misspelling, is an error). KServe's resources are
custom resources, not in those schemas: tests/test_kserve.py reads them against the
fields KServe documents, and validates their containers here as a Pod's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

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
    pause = container["lifecycle"]["preStop"]["exec"]["command"]

    assert "sleep" in " ".join(pause)
    assert pod["terminationGracePeriodSeconds"] > 10 + 30  # the pause, then the longest graceful stop


def test_the_keys_come_from_a_secret() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    [container] = pod["containers"]
    keys = next(m for m in container["volumeMounts"] if m["mountPath"] == "/etc/flaskserve/keys")

    assert "secret" in next(v for v in pod["volumes"] if v["name"] == keys["name"])
