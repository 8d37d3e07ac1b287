"""skaffold on the local node, as the README's "skaffold on this machine" runs it (issue 25).

skaffold v2.24.0 is built from its vendored source; `stockpipe cluster skaffold ...` runs it in a copy of
the repository (the tests edit files there) on a node brought up for this module, with the kube context
`kind-stockpipe-local`, so skaffold loads its images through the node's `kind load docker-image`, as it
would onto a kind node. The images are built by skaffold with the project's Docker engine.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from stockpipe_dev.localservices.kube.controlplane import ControlPlane
from stockpipe_dev.localservices.kube.node import missing_for_node
from stockpipe_dev.localservices.kube.skaffold import ensure_skaffold
from stockpipe_dev.localservices.kube.tools import CommandError, Kubectl
from stockpipe_dev.localservices.process import ServiceError

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "stockpipe"  # skaffold.yaml's
STOCKPIPE = [str(Path(sys.executable).parent / "stockpipe")]
# What the copy leaves out: environments, caches, local data, and the chart's fetched dependencies.
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", ".bench", ".stockpipe", ".lake", ".warehouse", "__pycache__", ".*_cache", ".hypothesis",
    "target", "logs", "charts",
)  # fmt: skip
CONSUMER_MODULE = Path("jobs/stockpipe/stream/consumer/__init__.py")
SYNC_SAVES = 5


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    if missing := missing_for_node("dockerd"):
        pytest.skip(f"the node needs {', '.join(missing)} (.ci/prereqs.sh installs them; CI runs as root)")
    try:
        ensure_skaffold()
    except ServiceError as exc:
        pytest.fail(f"skaffold could not be built: {exc}")
    plane = ControlPlane(tmp_path_factory.mktemp("skaffold") / "cluster", echo=print)
    plane.up(with_node=True)
    try:
        yield plane
    finally:
        plane.down()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the working tree (with its uncommitted changes), where the tests save their edits."""
    copy = tmp_path_factory.mktemp("project") / "stockpipe"
    shutil.copytree(REPO, copy, ignore=NOT_COPIED)
    shutil.copytree(REPO / "charts", copy / "charts", ignore=shutil.ignore_patterns("charts"))
    return copy


def stockpipe_skaffold(plane: ControlPlane, project: Path, *args: str, timeout_s: float = 1200) -> str:
    """`stockpipe cluster skaffold ARGS` in the project copy, to its end; its output (failing on exit != 0)."""
    argv = [*STOCKPIPE, "cluster", "skaffold", "--root", str(plane.layout.root), *args]
    done = subprocess.run(argv, cwd=project, capture_output=True, text=True, timeout=timeout_s, check=False)
    assert done.returncode == 0, (
        f"{' '.join(args)}: exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )
    return done.stdout + done.stderr


def kubectl_for(plane: ControlPlane) -> Kubectl:
    info = plane.info()
    assert info is not None
    return Kubectl(Path(info.kubeconfig))


def pods(kubectl: Kubectl, component: str) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/component={component}"
    items: list[dict[str, Any]] = kubectl.json("get", "pods", "-n", NAMESPACE, "-l", selector)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def wait_for(what: str, check: Callable[[], Any], timeout_s: float, describe: Callable[[], str] = str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(1)
    pytest.fail(f"{what}: not within {timeout_s:.0f} s\n{describe()}")


@pytest.mark.e2e_check("skaffold_render_offline")
def test_render_needs_no_cluster_and_no_network(node: ControlPlane, project: Path, record_property: Any) -> None:
    """`skaffold render` of the local-node profile: the chart's dependencies from charts/ (no `helm dep build`),
    the Kubernetes version helm assumes the chart's (no cluster asked), images tagged by their inputs."""
    out = stockpipe_skaffold(node, project, "render", "-p", "local-node", "--offline=true", "--digest-source=tag",
                             "--output", str(project / "rendered.yaml"))  # fmt: skip
    objects = [o for o in yaml.safe_load_all((project / "rendered.yaml").read_text()) if o]
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "NetworkPolicy", "TickerWatchlist"} <= kinds, kinds
    images = {
        c["image"] for o in objects if o["kind"] == "Deployment" for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert images
    assert all(re.fullmatch(r"stockpipe(-dashboard)?:[0-9a-f]{64}", i) for i in images), images
    # skaffold render is not skaffold dev: production pods, no development mode.
    assert all("initContainers" not in o["spec"]["template"]["spec"] for o in objects if o["kind"] == "Deployment")
    assert "dep build" not in out
    record_property("detail", f"{len(objects)} objects, images {sorted(images)}")


@pytest.mark.e2e_check("skaffold_run_ready")
def test_run_builds_loads_and_deploys_ready_pods(node: ControlPlane, project: Path, record_property: Any) -> None:
    """`skaffold run`: the images built with the local engine, loaded through `kind load docker-image`, the
    chart installed by skaffold's helm deployer; every Deployment Ready with production pods. Then deleted."""
    started = time.monotonic()
    out = stockpipe_skaffold(node, project, "run", "--status-check=true")
    took = time.monotonic() - started
    assert "Loading images into kind cluster nodes" in out, out[-3000:]
    kubectl = kubectl_for(node)
    deployments = kubectl.json("get", "deployments", "-n", NAMESPACE)["items"]
    assert {d["metadata"]["name"] for d in deployments} >= {"stockpipe-consumer", "stockpipe-producer"}
    for deployment in deployments:
        status = deployment["status"]
        assert status.get("readyReplicas") == deployment["spec"]["replicas"], deployment["metadata"]["name"]
        spec = deployment["spec"]["template"]["spec"]
        assert "initContainers" not in spec
        assert all(c["securityContext"]["readOnlyRootFilesystem"] for c in spec["containers"])
    stockpipe_skaffold(node, project, "delete")
    wait_for("the release's pods gone", lambda: not kubectl.json("get", "pods", "-n", NAMESPACE)["items"], 180)
    record_property("detail", f"skaffold run {took:.0f} s, {len(deployments)} Deployments Ready")


@dataclass
class DevSession:
    """A running `stockpipe cluster skaffold dev --port-forward`, its output in a file."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_output(self, pattern: str, timeout_s: float, after: int = 0) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            assert self.process.poll() is None, (
                f"skaffold dev exited ({self.process.returncode}):\n{self.output()[-4000:]}"
            )
            return re.search(pattern, self.output()[after:])

        match: re.Match[str] = wait_for(
            f"skaffold dev printing {pattern!r}", found, timeout_s, lambda: self.output()[-4000:]
        )
        return match


@pytest.fixture
def dev(node: ControlPlane, project: Path, tmp_path: Path) -> Iterator[DevSession]:
    log = tmp_path / "skaffold-dev.log"
    argv = [*STOCKPIPE, "cluster", "skaffold", "--root", str(node.layout.root), "dev", "--port-forward"]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=project, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    session = DevSession(process, log)
    try:
        yield session
    finally:
        if process.poll() is None:  # the test failed before its Ctrl-C
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(180)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def consumer_log(kubectl: Kubectl, pod: str) -> str:
    try:
        return kubectl.run("logs", pod, "-n", NAMESPACE, "-c", "consumer").stdout
    except CommandError:
        return ""


@pytest.mark.e2e_check("skaffold_dev_sync")
def test_dev_syncs_python_rebuilds_on_dockerfile_and_cleans_up_on_ctrl_c(
    node: ControlPlane, project: Path, dev: DevSession, record_property: Any
) -> None:
    kubectl = kubectl_for(node)
    dev.wait_output(r"Press Ctrl\+C to exit", timeout_s=1500)
    # The dashboard's port-forward answers.
    forward = dev.wait_output(
        r"service/stockpipe-dashboard in namespace stockpipe, remote port 8501 -> (http://\S+)", 60
    )
    with urllib.request.urlopen(f"{forward.group(1)}/_stcore/health", timeout=30) as response:  # noqa: S310
        assert response.read() == b"ok"

    # Saving a consumer module: synced into the running pod and run there, no image built.
    [consumer] = pods(kubectl, "consumer")
    name, uid = consumer["metadata"]["name"], consumer["metadata"]["uid"]
    assert consumer["spec"]["initContainers"][0]["name"] == "seed-code"
    module = project / CONSUMER_MODULE
    original = module.read_text()
    sync_s = []
    for save in range(SYNC_SAVES):
        marker = f"skaffold-sync-{save}-{time.time_ns()}"
        mark = len(dev.output())
        saved = time.monotonic()
        module.write_text(f"{original}\nprint({marker!r}, flush=True)\n")
        wait_for(f"{marker} in the consumer's log", lambda m=marker: m in consumer_log(kubectl, name), 120,
                 lambda: dev.output()[-3000:])  # fmt: skip
        sync_s.append(time.monotonic() - saved)
        assert "Syncing" in dev.output()[mark:]
        assert "Building [stockpipe]" not in dev.output()[mark:]
    [same] = pods(kubectl, "consumer")
    assert same["metadata"]["uid"] == uid  # the same pod: synced and restarted in place, not rolled
    assert same["status"]["containerStatuses"][0]["restartCount"] == 0  # watchfiles restarted the process
    record_property("cluster.skaffold_sync_s", round(statistics.median(sync_s), 2))

    # A Dockerfile change: rebuilt, loaded and rolled out.
    dockerfile = project / "images" / "Dockerfile"
    text = dockerfile.read_text()
    stage = "FROM runtime AS stockpipe\n"
    assert stage in text
    mark = len(dev.output())
    saved = time.monotonic()
    dockerfile.write_text(text.replace(stage, f"{stage}ENV STOCKPIPE_DEV_EDIT=1\n"))

    def rolled_out() -> bool:
        fresh = [p for p in pods(kubectl, "consumer") if p["metadata"]["uid"] != uid and ready(p)]
        return bool(fresh) and not [p for p in pods(kubectl, "consumer") if p["metadata"]["uid"] == uid]

    wait_for("a consumer pod of the rebuilt image Ready", rolled_out, 1200, lambda: dev.output()[-3000:])
    rebuild_s = time.monotonic() - saved
    assert "Building [stockpipe]" in dev.output()[mark:]
    [rebuilt] = pods(kubectl, "consumer")
    assert rebuilt["spec"]["containers"][0]["image"] != consumer["spec"]["containers"][0]["image"]
    record_property("cluster.skaffold_rebuild_s", round(rebuild_s, 1))

    # Ctrl-C: skaffold removes what it deployed (the broker and MinIO stay for the next session).
    os.killpg(dev.process.pid, signal.SIGINT)
    assert dev.process.wait(240) == 0, dev.output()[-3000:]
    assert not kubectl.json("get", "deployments", "-n", NAMESPACE)["items"]
    assert "helm" not in kubectl.run("get", "secrets", "-n", NAMESPACE).stdout  # no release record left
    each = ", ".join(f"{s:.1f}" for s in sync_s)
    record_property(
        "detail",
        f"sync median {statistics.median(sync_s):.1f} s over {SYNC_SAVES} saves ({each}); "
        f"Dockerfile change to a new consumer pod Ready {rebuild_s:.0f} s; Ctrl-C removed the release",
    )
