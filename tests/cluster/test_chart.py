"""helm install/upgrade/rollback/uninstall of charts/stockpipe against the real API server.

No kubelet runs here: Pods are created (their ReplicaSet got them past Pod Security Admission) but never
started. The namespace enforces, warns and audits the restricted Pod Security Standard.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from stockpipe_dev.localservices.kube.tools import RESTRICTED_LABELS, Helm, Kubectl, values_args
from tests.cluster.conftest import OFFLINE_VALUES
from tests.cluster.workloads import namespaced_objects, wait_all_pods_created

NAMESPACE = "chart-lifecycle"
RELEASE = "sp"


def _deployment(kubectl: Kubectl, part: str) -> dict[str, Any]:
    matches = [d for d in kubectl.json("get", "deployments", "-n", NAMESPACE)["items"] if part in d["metadata"]["name"]]
    assert len(matches) == 1, [d["metadata"]["name"] for d in matches]
    return matches[0]


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


@pytest.fixture(scope="module")
def installed(kubectl: Kubectl, helm: Helm, chart: Path) -> str:
    kubectl.namespace(NAMESPACE, RESTRICTED_LABELS)
    result = helm.run("install", RELEASE, str(chart), "-n", NAMESPACE, *values_args(OFFLINE_VALUES))
    # API warnings (deprecated APIs, Pod Security "would violate" under warn=restricted) reach stderr.
    assert "warning" not in result.stderr.lower(), result.stderr
    return result.stdout


def test_install_creates_every_workloads_pods_under_restricted(installed: str, kubectl: Kubectl) -> None:
    pods = wait_all_pods_created(kubectl, NAMESPACE)
    names = set(pods)
    for part in ("producer", "consumer", "operator", "dashboard"):
        assert any(part in name for name in names), names
    for deployment_pods in pods.values():
        for pod in deployment_pods:
            spec = pod["spec"]
            assert spec["securityContext"]["runAsNonRoot"] is True
            for container in spec["containers"]:
                assert container["securityContext"]["readOnlyRootFilesystem"] is True
                assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_upgrade_rollback_and_uninstall_leave_only_what_stays(
    installed: str, kubectl: Kubectl, helm: Helm, chart: Path
) -> None:
    wait_all_pods_created(kubectl, NAMESPACE)
    before = _env(_deployment(kubectl, "producer"))
    changed = {**OFFLINE_VALUES, "producer": {"logLevel": "DEBUG"}, "consumer": {"replicas": 2}}
    upgrade = helm.run("upgrade", RELEASE, str(chart), "-n", NAMESPACE, *values_args(changed))
    assert "warning" not in upgrade.stderr.lower(), upgrade.stderr
    assert "DEBUG" in _env(_deployment(kubectl, "producer")).values()
    assert _deployment(kubectl, "consumer")["spec"]["replicas"] == 2
    pods = wait_all_pods_created(kubectl, NAMESPACE)
    assert len(next(p for name, p in pods.items() if "consumer" in name)) == 2
    # Two consumers: a PodDisruptionBudget keeps one of them through node drains.
    assert kubectl.json("get", "poddisruptionbudgets", "-n", NAMESPACE)["items"]

    helm.run("rollback", RELEASE, "1", "-n", NAMESPACE)
    assert _env(_deployment(kubectl, "producer")) == before
    assert _deployment(kubectl, "consumer")["spec"]["replicas"] == 1
    wait_all_pods_created(kubectl, NAMESPACE)
    history = helm.run("history", RELEASE, "-n", NAMESPACE, "-o", "json").stdout
    assert '"revision":3' in history.replace(" ", "")

    helm.run("uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    # What stays by design: PersistentVolumeClaims (data) and, cluster-wide, the CRDs.
    # Pods go with their ReplicaSets through garbage collection, a moment after helm returns.
    deadline = time.monotonic() + 60
    while left := {obj for obj in namespaced_objects(kubectl, NAMESPACE) if obj[0] != "PersistentVolumeClaim"}:
        assert time.monotonic() < deadline, f"left behind: {sorted(left)}"
        time.sleep(0.5)
    assert kubectl.json("get", "crd", "tickerwatchlists.stockpipe.io")["metadata"]["name"]
