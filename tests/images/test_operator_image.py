"""The operator from the `stockpipe` image reconciles a TickerWatchlist on the local control plane.

The chart is installed into the real kube-apiserver (tests/cluster's fixtures); the container runs as
its own user with a read-only root and host networking (the API server listens on loopback), with a
kubeconfig holding a token of the chart's operator ServiceAccount, so only the chart's Role speaks for it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockpipe_dev.localservices.kube.layout import ClusterInfo, write_kubeconfig
from stockpipe_dev.localservices.kube.tools import (
    RESTRICTED_LABELS,
    CommandError,
    Helm,
    Kubectl,
    operator_wiring,
    values_args,
)
from tests.cluster.conftest import OFFLINE_VALUES, REPO
from tests.images.conftest import Images

NAMESPACE = "operator-image"
CONFIGMAP = "opimg-stockpipe-watchlist"  # the chart names it after the release
EXAMPLE = REPO / "charts" / "stockpipe" / "examples" / "tech-megacaps.yaml"
UID = 10001


def rendered_symbols(kubectl: Kubectl) -> list[str] | None:
    try:
        configmap = kubectl.json("get", "configmap", CONFIGMAP, "-n", NAMESPACE)
    except CommandError:
        return None
    text = (configmap.get("data") or {}).get("watchlist.json")
    return None if text is None else list(json.loads(text)["symbols"])


@pytest.fixture(scope="module")
def operator_container(
    images: Images,
    kubectl: Kubectl,
    helm: Helm,
    chart: Path,
    cluster: ClusterInfo,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    kubectl.namespace(NAMESPACE, RESTRICTED_LABELS)
    helm.run(
        "install",
        "opimg",
        str(chart),
        "-n",
        NAMESPACE,
        *values_args({**OFFLINE_VALUES, "watchlist": {"create": False}}),
    )
    wiring = operator_wiring(kubectl, NAMESPACE)
    assert wiring.configmap == CONFIGMAP
    account = wiring.service_account
    kube = tmp_path_factory.mktemp("operator-image") / "kube"
    kube.mkdir()
    shutil.copy(cluster.ca_file, kube / "ca.crt")
    token = kubectl.create_token(NAMESPACE, account)
    user = f"system:serviceaccount:{NAMESPACE}:{account}"
    write_kubeconfig(kube / "config", cluster.server, Path("/kube/ca.crt"), user, token, NAMESPACE)
    for path in (kube, kube / "ca.crt", kube / "config"):
        os.chown(path, UID, UID)  # the image's user reads them, as a pod reads its projected token
    started = images.run(
        "stockpipe",
        [
            "operator",
            "--namespace",
            NAMESPACE,
            "--configmap",
            CONFIGMAP,
            "--liveness-port",
            "0",
            "--resync-seconds",
            "5",
        ],
        env={"KUBECONFIG": "/kube/config"},
        volumes=[f"{kube}:/kube:ro"],
        network="host",
        detach=True,
    )
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    yield container
    images.docker("stop", "--time", "30", container, timeout=60)
    images.docker("rm", container)


def test_operator_container_renders_the_producers_configmap(
    operator_container: str, images: Images, kubectl: Kubectl
) -> None:
    kubectl.run("apply", "-n", NAMESPACE, "-f", str(EXAMPLE))
    expected = sorted(["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and rendered_symbols(kubectl) != expected:
        time.sleep(0.5)
    logs = images.docker("logs", operator_container)
    assert rendered_symbols(kubectl) == expected, (logs.stdout + logs.stderr)[-3000:]
    patch = {"spec": {"symbols": ["AAPL", "IBM"]}}
    kubectl.run("patch", "tw", "tech-megacaps", "-n", NAMESPACE, "--type=merge", "-p", json.dumps(patch))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and rendered_symbols(kubectl) != ["AAPL", "IBM"]:
        time.sleep(0.5)
    assert rendered_symbols(kubectl) == ["AAPL", "IBM"]
    running = images.docker("inspect", "--format", "{{.State.Running}} {{.Config.User}}", operator_container)
    assert running.stdout.split() == ["true", "10001:10001"]
