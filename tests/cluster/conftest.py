"""A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager), started once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stockpipe_dev.localservices.kube.build import CONTROL_PLANE, ensure_binaries
from stockpipe_dev.localservices.kube.controlplane import ControlPlane
from stockpipe_dev.localservices.kube.layout import ClusterInfo
from stockpipe_dev.localservices.kube.tools import Helm, Kubectl, chart_without_dependencies
from stockpipe_dev.localservices.process import ServiceError
from tests.chart.charttools import crds_dir

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "stockpipe"

# Every value set here disables what cannot be fetched here (the Airflow, Strimzi and MinIO operator
# charts) and points the workloads at an external Kafka and S3, unless a test turns Strimzi/MinIO on.
OFFLINE_VALUES: dict[str, Any] = {
    "airflow": {"enabled": False},
    "strimzi-kafka-operator": {"enabled": False},
    "minio-operator": {"enabled": False},
    "kafka": {"external": {"enabled": True, "bootstrapServers": "kafka.example.internal:9092"}},
    "lake": {"mode": "external", "endpoint": "http://s3.example.internal:9000"},
}


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    try:
        ensure_binaries(CONTROL_PLANE)
    except ServiceError as exc:
        pytest.skip(f"Kubernetes binaries cannot be built here: {str(exc).splitlines()[0]}")
    plane = ControlPlane(tmp_path_factory.mktemp("cluster"), echo=lambda _: None)
    plane.up()
    yield plane
    plane.down()


@pytest.fixture(scope="session")
def cluster(control_plane: ControlPlane) -> ClusterInfo:
    info = control_plane.info()
    assert info is not None
    return info


@pytest.fixture(scope="session")
def kubectl(cluster: ClusterInfo) -> Kubectl:
    return Kubectl(Path(cluster.kubeconfig))


@pytest.fixture(scope="session")
def helm(cluster: ClusterInfo, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(Path(cluster.kubeconfig), tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="session")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return chart_without_dependencies(CHART, tmp_path_factory.mktemp("chart"))


@pytest.fixture(scope="session")
def shared_crds() -> Path:
    """The Strimzi and MinIO CRDs as released: STOCKPIPE_CRDS_DIR, ../shared/crds, else the pinned releases."""
    try:
        return crds_dir()
    except OSError as exc:  # no ../shared and no internet
        pytest.skip(f"the Strimzi/MinIO CRDs are not here and could not be fetched ({exc}); set STOCKPIPE_CRDS_DIR")
