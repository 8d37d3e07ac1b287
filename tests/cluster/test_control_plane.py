"""The local control plane itself: healthy, stamped with its version, enforcing Pod Security, stopped cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stockpipe_dev.localservices.kube.controlplane import ControlPlane
from stockpipe_dev.localservices.kube.layout import ClusterInfo
from stockpipe_dev.localservices.kube.tools import RESTRICTED_LABELS, CommandError, Kubectl
from stockpipe_dev.localservices.process import pid_alive


def test_every_component_reports_healthy(control_plane: ControlPlane) -> None:
    status = control_plane.status()
    assert set(status) == {"etcd", "kube-apiserver", "kube-controller-manager"}
    assert all(ok for ok, _ in status.values()), status


def test_server_version_is_stamped(cluster: ClusterInfo) -> None:
    # helm's kubeVersion checks read it; an unstamped build says v0.0.0.
    assert json.loads(cluster.get("/version"))["gitVersion"] == "v1.34.4"


def test_restricted_namespace_refuses_a_non_compliant_pod(kubectl: Kubectl) -> None:
    kubectl.namespace("psa-check", RESTRICTED_LABELS)
    with pytest.raises(CommandError, match="violates PodSecurity"):
        kubectl.run("run", "root-shell", "-n", "psa-check", "--image=busybox", "--restart=Never")


def test_anonymous_requests_are_refused(cluster: ClusterInfo) -> None:
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(cluster.server + "/api/v1/namespaces", context=cluster.ssl_context(), timeout=5)  # noqa: S310
    assert refused.value.code == 401


def test_cli_up_status_down_leaves_no_process_and_no_data(tmp_path: Path, control_plane: ControlPlane) -> None:
    """A second cluster through the CLI, beside the session's: `down` stops every pid it started."""
    root = tmp_path / "cli-cluster"
    stockpipe = [sys.executable, "-m", "stockpipe.cli"]
    env = {**os.environ, "STOCKPIPE_CLUSTER_DIR": str(root)}
    try:
        up = subprocess.run([*stockpipe, "cluster", "up"], env=env, capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stderr
        assert up.stdout == f"export KUBECONFIG={root / 'kubeconfig'}\n"
        status = subprocess.run([*stockpipe, "cluster", "status"], env=env, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        pids = [json.loads(p.read_text())["pid"] for p in (root / "records").glob("*.json")]
        assert len(pids) == 3
        assert all(pid_alive(pid) for pid in pids)
        kubectl = Kubectl(root / "kubeconfig")
        assert kubectl.json("get", "namespace", "default")["status"]["phase"] == "Active"
    finally:
        # Whatever failed above, the cluster this test started is stopped (by the pids in its records).
        down = subprocess.run([*stockpipe, "cluster", "down"], env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    assert not any(pid_alive(pid) for pid in pids)
    assert sorted(p.name for p in root.iterdir()) == ["logs"]
    status = subprocess.run([*stockpipe, "cluster", "status"], env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 1
