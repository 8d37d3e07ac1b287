"""The released Strimzi and MinIO CRDs on the real API server, and the chart's objects validated by them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from stockpipe_dev.localservices.kube.tools import RESTRICTED_LABELS, CommandError, Helm, Kubectl, values_args
from tests.cluster.conftest import OFFLINE_VALUES
from tests.cluster.workloads import wait_all_pods_created

NAMESPACE = "chart-strimzi-tenant"
CRDS = {
    "kafkas.kafka.strimzi.io",
    "kafkanodepools.kafka.strimzi.io",
    "kafkatopics.kafka.strimzi.io",
    "kafkausers.kafka.strimzi.io",
    "tenants.minio.min.io",
}


@pytest.fixture(scope="module")
def crds(kubectl: Kubectl, shared_crds: Path) -> set[str]:
    for folder in sorted(p for p in shared_crds.iterdir() if p.is_dir()):
        # Server-side apply: the Kafka CRD is too large for client-side apply's annotation.
        kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(folder), timeout_s=120)

    def established() -> set[str]:
        return {
            crd["metadata"]["name"]
            for crd in kubectl.json("get", "crds")["items"]
            if any(
                c["type"] == "Established" and c["status"] == "True"
                for c in (crd.get("status") or {}).get("conditions") or []
            )
        }

    deadline = time.monotonic() + 60
    while not established() >= CRDS:
        assert time.monotonic() < deadline, f"not established: {CRDS - established()}"
        time.sleep(0.5)
    return CRDS


def test_the_chart_with_strimzi_and_a_minio_tenant_installs(
    crds: set[str], kubectl: Kubectl, helm: Helm, chart: Path
) -> None:
    kubectl.namespace(NAMESPACE, RESTRICTED_LABELS)
    values = {
        **OFFLINE_VALUES,
        "kafka": {"external": {"enabled": False}, "replicas": 1, "minInsyncReplicas": 1, "strimzi": {"nodes": 1}},
        "lake": {
            "mode": "tenant",
            # The workloads' MinIO user (the credentials' Secret) is required in tenant mode.
            "tenant": {"configurationSecret": "lake-env", "users": ["lake-credentials"]},
            "credentials": {"existingSecret": "lake-credentials"},
        },
    }
    # No hooks: no MinIO operator runs here, so the lake-policy hook Job could only wait for a tenant
    # that never starts (tests/chart/test_components.py checks the Job as rendered).
    result = helm.run("install", "kind", str(chart), "-n", NAMESPACE, "--no-hooks", *values_args(values))
    assert "warning" not in result.stderr.lower(), result.stderr
    # Each object passed the CRD's openAPIV3Schema in the API server to be stored.
    for kind in ("kafkas.kafka.strimzi.io", "kafkanodepools.kafka.strimzi.io", "kafkatopics.kafka.strimzi.io",
                 "tenants.minio.min.io"):  # fmt: skip
        assert kubectl.json("get", kind, "-n", NAMESPACE)["items"], kind
    topics = kubectl.json("get", "kafkatopics.kafka.strimzi.io", "-n", NAMESPACE)["items"]
    assert {t["spec"]["replicas"] for t in topics} == {1}
    wait_all_pods_created(kubectl, NAMESPACE)


def test_the_api_server_validates_strimzi_objects(crds: set[str], kubectl: Kubectl) -> None:
    kubectl.namespace("crd-validation")
    topic = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {"name": "bad-topic", "namespace": "crd-validation", "labels": {"strimzi.io/cluster": "x"}},
        "spec": {"partitions": "six", "replicas": 1},
    }
    with pytest.raises(CommandError, match=r"spec\.partitions"):
        kubectl.apply(topic)
