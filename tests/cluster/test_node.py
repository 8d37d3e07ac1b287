"""`stockpipe cluster up --with-node`: a real node (containerd, CNI bridge, kubelet, scheduler, kube-proxy).

A restricted Deployment runs on it and turns Ready; `cluster down` leaves no process, mount, network
link, network namespace or iptables chain of the node behind.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from stockpipe_dev.localservices.kube.controlplane import ControlPlane
from stockpipe_dev.localservices.kube.node import BRIDGE, GATEWAY, PAUSE_IMAGE, POD_CIDR, leftovers, missing_for_node
from stockpipe_dev.localservices.kube.tools import RESTRICTED_LABELS, Kubectl

# A real node, the images imported into it, minutes a module: `make e2e`, not `make test`.
pytestmark = pytest.mark.e2e


def _netns() -> set[str]:
    return set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()


def _chains() -> str:
    return "\n".join(
        line
        for table in ("filter", "nat", "mangle")
        for line in subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True).stdout.splitlines()
        if "KUBE" in line or "CNI" in line
    )


@pytest.fixture
def node_prerequisites() -> None:
    if missing := missing_for_node():
        pytest.skip(f"a node needs {', '.join(missing)} (.ci/prereqs.sh installs them; CI runs as root)")


def _deployment(namespace: str) -> dict[str, object]:
    # What the restricted Pod Security Standard asks of a pod; the image is the node's own pause image.
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "sleeper", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "sleeper"}},
            "template": {
                "metadata": {"labels": {"app": "sleeper"}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65535,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "pause",
                            "image": PAUSE_IMAGE,
                            "imagePullPolicy": "Never",
                            "resources": {"limits": {"cpu": "50m", "memory": "16Mi"}},
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


def test_node_runs_restricted_pods_and_down_leaves_nothing(node_prerequisites: None, tmp_path: Path) -> None:
    netns_before, chains_before = _netns(), _chains()
    plane = ControlPlane(tmp_path / "node-cluster", echo=lambda _: None)
    try:
        info = plane.up(with_node=True)
        assert all(ok for ok, _ in plane.status().values()), plane.status()
        kubectl = Kubectl(Path(info.kubeconfig))
        kubectl.namespace("node-check", RESTRICTED_LABELS)
        kubectl.apply(_deployment("node-check"))
        kubectl.run("rollout", "status", "deployment/sleeper", "-n", "node-check", "--timeout=120s", timeout_s=150)
        pods = kubectl.json("get", "pods", "-n", "node-check")["items"]
        assert len(pods) == 2
        for pod in pods:
            assert pod["spec"]["nodeName"] == "localhost"
            assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(POD_CIDR)
        assert len(_netns() - netns_before) == 2
    finally:
        plane.down()
    deadline = time.monotonic() + 10
    while leftovers(plane.layout.root) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert leftovers(plane.layout.root) == []
    assert _netns() == netns_before
    assert _chains() == chains_before
    assert subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True).returncode != 0
    assert json.loads(json.dumps(sorted(p.name for p in plane.layout.root.iterdir()))) == ["logs"]


def _headless(namespace: str) -> list[dict[str, object]]:
    """A pod with a hostname in a headless Service's subdomain: how Strimzi's brokers and a MinIO tenant's
    servers are addressed (`<hostname>.<subdomain>.<namespace>.svc`)."""
    pod = _deployment(namespace)["spec"]["template"]  # type: ignore[index]
    spec = {**pod["spec"], "hostname": "broker-0", "subdomain": "brokers"}  # type: ignore[index]
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "brokers", "namespace": namespace},
         "spec": {"clusterIP": "None", "selector": {"app": "broker"}, "ports": [{"name": "x", "port": 9091}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "broker-0", "namespace": namespace,
         "labels": {"app": "broker"}}, "spec": spec},
    ]  # fmt: skip


def _ask(name: str) -> list[str]:
    import dns.message
    import dns.query

    reply = dns.query.udp(dns.message.make_query(name, "A"), GATEWAY, timeout=5)
    return sorted(item.address for rrset in reply.answer for item in rrset if hasattr(item, "address"))


def test_cluster_dns_answers_services_headless_pods_and_pod_records(node_prerequisites: None, tmp_path: Path) -> None:
    """CoreDNS on the gateway, from the API server: a Service's ClusterIP, a headless Service's pods, a pod by
    its hostname in the Service's subdomain and by its address; names outside the cluster get no answer."""
    plane = ControlPlane(tmp_path / "dns-cluster", echo=lambda _: None)
    try:
        info = plane.up(with_node=True)
        kubectl = Kubectl(Path(info.kubeconfig))
        kubectl.namespace("dns-check", RESTRICTED_LABELS)
        for manifest in _headless("dns-check"):
            kubectl.apply(manifest)
        kubectl.run("wait", "--for=condition=Ready", "pod/broker-0", "-n", "dns-check", "--timeout=120s", timeout_s=150)
        ip = kubectl.json("get", "pod", "broker-0", "-n", "dns-check")["status"]["podIP"]
        cluster_ip = kubectl.json("get", "service", "kubernetes", "-n", "default")["spec"]["clusterIP"]
        assert _ask("kubernetes.default.svc.cluster.local.") == [cluster_ip]
        deadline = time.monotonic() + 30  # the endpoints reach CoreDNS's watch shortly after Ready
        while _ask("broker-0.brokers.dns-check.svc.cluster.local.") != [ip]:
            assert time.monotonic() < deadline, _ask("broker-0.brokers.dns-check.svc.cluster.local.")
            time.sleep(1)
        assert _ask("brokers.dns-check.svc.cluster.local.") == [ip]
        assert _ask(f"{ip.replace('.', '-')}.dns-check.pod.cluster.local.") == [ip]
        assert _ask("example.com.") == []
    finally:
        plane.down()
