"""The chart's pods running for real on the local node (issue 19), one cluster and one install per module.

`helm install` with ci/local-node-values.yaml (the kind quickstart minus what cannot be pulled here:
Kafka and S3 are the local broker and MinIO on the bridge gateway) into a namespace enforcing the
restricted Pod Security Standard; the images are those of `make images`, imported into the node.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockpipe.localservices.kube.deploy import NodeDeployment, deployed_on_node
from stockpipe.localservices.kube.node import NODE_NAME
from stockpipe.localservices.kube.tools import CommandError

NAMESPACE = "stockpipe-node"
COMPONENTS = ("producer", "consumer", "operator", "dashboard")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeDeployment]:
    missing = [tool for tool in ("containerd", "ctr", "runc", "iptables", "ip", "dockerd") if not shutil.which(tool)]
    missing += [] if Path("/usr/lib/cni/bridge").exists() else ["containernetworking-plugins"]
    if os.geteuid() != 0 or missing:
        pytest.skip(f"the node needs root and {', '.join(missing) or 'root'} (.ci/prereqs.sh installs them)")
    with deployed_on_node(tmp_path_factory.mktemp("chart-on-node"), namespace=NAMESPACE, echo=print) as deployed:
        yield deployed


def test_workloads_run_ready_under_restricted(deployment: NodeDeployment) -> None:
    labels = deployment.kubectl.json("get", "namespace", NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for component in COMPONENTS:
        wanted = deployment.deployment(component)["spec"]["replicas"]
        pods = deployment.pods(component)
        ready = [
            pod
            for pod in pods
            if any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
        ]
        assert len(ready) == wanted >= 1, (component, deployment.describe())
        for pod in ready:
            assert pod["spec"]["nodeName"] == NODE_NAME
            # Started from the imported image, never pulled.
            assert all(c["imageID"] for c in pod["status"]["containerStatuses"])


def test_helm_test_probe_reaches_the_lake(deployment: NodeDeployment) -> None:
    """The probe pod publishes a quote, the running consumer writes it to MinIO, the watchlist is Ready."""
    # The probe pod is deleted once it succeeds (hook-succeeded), so its logs are read only on failure.
    try:
        result = deployment.helm.run("test", deployment.release, "-n", NAMESPACE, "--timeout", "5m", timeout_s=360)
    except CommandError as exc:
        pytest.fail(f"helm test failed: {exc}\n{deployment.describe()}")
    assert "Phase:          Succeeded" in result.stdout, result.stdout
    lake = deployment.minio.filesystem()
    objects = lake.find(deployment.values["lake"]["bucket"])  # type: ignore[attr-defined]
    assert any(path.endswith(".parquet") for path in objects), objects
