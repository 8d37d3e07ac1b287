"""The chart on the local node: what the node test and `stockpipe bench cluster` deploy and tear down.

`deployed_on_node` brings up a cluster with a node, imports the images of `make images` (built first,
from the layer cache when nothing changed), starts the local Kafka broker and MinIO on the bridge's
gateway (what the pods reach; nothing of theirs runs in the node: their images cannot be pulled here),
creates the topics the chart's KafkaTopics would, the lake's Secret and a hostPath PersistentVolume for
the DuckDB warehouse claim (no storage provisioner here), then `helm install`s the chart with
`ci/local-node-values.yaml` into a namespace enforcing the restricted Pod Security Standard, and waits
until every Deployment is Ready. On leaving, everything is stopped by pid and `cluster down` runs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stockpipe_dev.localservices.docker import running_engine
from stockpipe_dev.localservices.imagebuild import build_all, repo_root
from stockpipe_dev.localservices.kafka import KafkaBroker
from stockpipe_dev.localservices.kube.addons import KAFDROP_IMAGE, KAFDROP_VERSION, ensure_kafdrop_image
from stockpipe_dev.localservices.kube.controlplane import ControlPlane
from stockpipe_dev.localservices.kube.images import import_images
from stockpipe_dev.localservices.kube.ingress import INGRESS_CLASS, install_ingress_controller
from stockpipe_dev.localservices.kube.kindload import load_images
from stockpipe_dev.localservices.kube.layout import ClusterInfo
from stockpipe_dev.localservices.kube.node import GATEWAY, Node
from stockpipe_dev.localservices.kube.tools import (
    RESTRICTED_LABELS,
    CommandError,
    Helm,
    Kubectl,
    chart_without_dependencies,
    values_args,
)
from stockpipe_dev.localservices.minio import MinioServer
from stockpipe_dev.localservices.process import ServiceError, free_port, port_in_use

NODE_VALUES = Path("charts/stockpipe/ci/local-node-values.yaml")
# Over those values, with `ingress`: Kafdrop from the image built here and the three UIs behind the local
# Traefik's IngressClass (Kafdrop and the dashboard exposed explicitly, as the chart requires), host names
# under .stockpipe.test that the browser maps to this machine.
INGRESS_HOST_SUFFIX = "stockpipe.test"
INGRESS_VALUES: dict[str, Any] = {
    "images": {"kafdrop": {"repository": KAFDROP_IMAGE.split(":")[0], "tag": KAFDROP_VERSION, "pullPolicy": "Never"}},
    "kafdrop": {"enabled": True},
    "ingress": {
        "enabled": True,
        "className": INGRESS_CLASS,
        "hosts": {ui: f"{ui}.{INGRESS_HOST_SUFFIX}" for ui in ("airflow", "kafdrop", "dashboard")},
        "kafdrop": {"enabled": True},
        "dashboard": {"enabled": True},
    },
}
# What the workloads of that value set run on: the operator, producer and probe run `stockpipe`.
NODE_IMAGES = ("stockpipe", "dashboard")


@dataclass(frozen=True)
class NodeDeployment:
    """A running install of the chart on the local node, and the services its pods use."""

    plane: ControlPlane
    info: ClusterInfo
    kubectl: Kubectl
    helm: Helm
    chart: Path
    namespace: str
    release: str
    broker: KafkaBroker
    minio: MinioServer
    values: dict[str, Any]

    def deployment(self, component: str) -> dict[str, Any]:
        name = f"{self.release}-stockpipe-{component}"
        result: dict[str, Any] = self.kubectl.json("get", "deployment", name, "-n", self.namespace)
        return result

    def pods(self, component: str) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/component={component},app.kubernetes.io/instance={self.release}"
        items: list[dict[str, Any]] = self.kubectl.json("get", "pods", "-n", self.namespace, "-l", selector)["items"]
        return items

    def describe(self) -> str:
        """Each pod's phase, conditions, container states and last log lines (for failure messages)."""
        lines = []
        for pod in self.kubectl.json("get", "pods", "-n", self.namespace)["items"]:
            name = pod["metadata"]["name"]
            status = pod.get("status", {})
            states = [(c["name"], c.get("state"), c.get("restartCount")) for c in status.get("containerStatuses", [])]
            lines.append(f"{name}: {status.get('phase')} {status.get('conditions')} {states}")
            with contextlib.suppress(CommandError):
                lines.append(self.kubectl.run("logs", name, "-n", self.namespace, "--tail=15").stdout)
        return "\n".join(lines)

    def wait_ready(self, timeout_s: float = 300.0) -> None:
        """Every Deployment of the release rolled out (its pods Ready); fails with the pods' state."""
        deadline = time.monotonic() + timeout_s
        for deployment in self.kubectl.json("get", "deployments", "-n", self.namespace)["items"]:
            name = deployment["metadata"]["name"]
            left = max(1, int(deadline - time.monotonic()))
            try:
                self.kubectl.run("rollout", "status", f"deployment/{name}", "-n", self.namespace,
                                 f"--timeout={left}s", timeout_s=left + 30)  # fmt: skip
            except CommandError as exc:
                raise ServiceError(f"{name} not Ready: {exc}\n{self.describe()}") from exc


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into `base` key by key, as helm merges one values file over another."""
    result = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(result.get(key), dict)
        result[key] = merged(result[key], value) if both else value
    return result


def node_values(broker: KafkaBroker, minio: MinioServer) -> dict[str, Any]:
    """ci/local-node-values.yaml with the broker's and MinIO's addresses on the bridge."""
    values: dict[str, Any] = yaml.safe_load((repo_root() / NODE_VALUES).read_text())
    values["kafka"]["external"]["bootstrapServers"] = broker.bootstrap
    values["lake"]["endpoint"] = minio.endpoint
    return values


def create_topics(broker: KafkaBroker, values: dict[str, Any]) -> None:
    """The topics the chart's KafkaTopics declare (Strimzi's job in a cluster; the workloads never create them)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topics = [NewTopic(t["name"], num_partitions=t["partitions"], replication_factor=1)
              for t in values["kafka"]["topics"].values()]  # fmt: skip
    for topic, future in admin.create_topics(topics, request_timeout=30).items():
        try:
            future.result(timeout=30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # a broker kept from an earlier session
                raise ServiceError(f"could not create topic {topic}: {exc}") from exc


def _lake_secret(kubectl: Kubectl, namespace: str, minio: MinioServer, values: dict[str, Any]) -> None:
    """The Secret the chart's lake.credentials name, holding MinIO's keys."""
    credentials = values["lake"]["credentials"]
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": credentials["existingSecret"], "namespace": namespace},
        "stringData": {credentials["accessKeyKey"]: minio.access_key, credentials["secretKeyKey"]: minio.secret_key},
    }
    kubectl.apply(manifest)


def _warehouse_volume(kubectl: Kubectl, path: Path, namespace: str) -> None:
    """A hostPath PersistentVolume for the chart's DuckDB claim (no provisioner runs here)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)  # the pods' uid owns nothing on the host; hostPath volumes get no fsGroup
    kubectl.apply({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{namespace}-warehouse"},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "",
            "hostPath": {"path": str(path), "type": "Directory"},
        },
    })  # fmt: skip


@dataclass(frozen=True)
class NodeServices:
    """What the chart's pods use on the node besides the cluster: the broker and MinIO, and the values."""

    broker: KafkaBroker
    minio: MinioServer
    values: dict[str, Any]


def _value_file_ports() -> tuple[int, int]:
    """The broker's and MinIO's ports as ci/local-node-values.yaml names them; ServiceError if either is taken."""
    values = yaml.safe_load((repo_root() / NODE_VALUES).read_text())
    kafka = int(values["kafka"]["external"]["bootstrapServers"].rsplit(":", 1)[1])
    s3 = int(values["lake"]["endpoint"].rsplit(":", 1)[1])
    for port in (kafka, s3):
        if port_in_use(port, GATEWAY):  # where the broker and MinIO will listen
            raise ServiceError(f"port {port} (named in {NODE_VALUES}) is taken: another session running?")
    return kafka, s3


@contextlib.contextmanager
def node_services(plane: ControlPlane, work: Path, namespace: str) -> Iterator[NodeServices]:
    """The local broker and MinIO on the bridge's gateway (what the pods reach; so does this machine), the
    topics the chart's KafkaTopics would create, and in `namespace` (restricted) the lake's Secret and the
    warehouse's volume: everything `helm install` of ci/local-node-values.yaml needs, at free ports (the
    values say which). Stopped on exit."""
    info = plane.info()
    if info is None:
        raise ServiceError("the cluster is not up")
    with contextlib.ExitStack() as stack:
        broker = KafkaBroker(work / "kafka", free_port(), free_port(), host=GATEWAY)
        stack.callback(KafkaBroker.stop, broker.start())
        minio = MinioServer(work / "minio", free_port(), free_port(), host=GATEWAY)
        stack.callback(MinioServer.stop, minio.start())
        yield _prepared(Kubectl(Path(info.kubeconfig)), work, namespace, broker, minio)


# The records of the broker and MinIO that `ensure_node_services` leaves running (`cluster down` stops them).
SERVICE_RECORDS = ("node-kafka", "node-minio")


def ensure_node_services(plane: ControlPlane, work: Path, namespace: str) -> None:
    """What node_services provides, at the ports ci/local-node-values.yaml names, left running for what
    outlives this call (a `skaffold run` leaves its pods behind): recorded among the cluster's processes,
    so `cluster down` stops them. Already running: nothing to do."""
    info = plane.info()
    if info is None:
        raise ServiceError("the cluster is not up")
    if all(plane.running(name) for name in SERVICE_RECORDS):
        return
    for name in SERVICE_RECORDS:
        plane.stop(name)
    kafka_port, s3_port = _value_file_ports()
    broker = KafkaBroker(work / "kafka", kafka_port, free_port(), host=GATEWAY)
    broker.start().save(plane.layout.record("node-kafka"))
    minio = MinioServer(work / "minio", s3_port, free_port(), host=GATEWAY)
    minio.start().save(plane.layout.record("node-minio"))
    _prepared(Kubectl(Path(info.kubeconfig)), work, namespace, broker, minio)


def _prepared(kubectl: Kubectl, work: Path, namespace: str, broker: KafkaBroker, minio: MinioServer) -> NodeServices:
    """The topics on the broker; the restricted namespace with the lake's Secret and the warehouse's volume."""
    values = node_values(broker, minio)
    create_topics(broker, values)
    kubectl.namespace(namespace, RESTRICTED_LABELS)
    _lake_secret(kubectl, namespace, minio, values)
    _warehouse_volume(kubectl, work / "warehouse", namespace)
    return NodeServices(broker, minio, values)


@contextlib.contextmanager
def deployed_on_node(
    work: Path,
    namespace: str = "stockpipe",
    release: str = "sp",
    images: Sequence[str] = NODE_IMAGES,
    echo: Callable[[str], None] = lambda _: None,
    ingress: bool = False,
) -> Iterator[NodeDeployment]:
    """The chart installed and Ready on a fresh local node under `work`; all of it stopped on exit.

    `ingress`: also Traefik as the ingress controller, Kafdrop's image, and INGRESS_VALUES over the values.
    """
    work.mkdir(parents=True, exist_ok=True)
    plane = ControlPlane(work / "cluster", echo=echo)
    started = time.monotonic()

    def step(what: str) -> None:
        echo(f"[{time.monotonic() - started:6.1f}s] {what}")

    try:
        with running_engine() as engine:
            build_all(engine, list(images))
            step("images built")
            info = plane.up(with_node=True)
            step("cluster with node up")
            import_images(Node(plane.layout, echo=echo), engine, images, echo)
            if ingress:
                install_ingress_controller(plane, engine, echo)
                load_images(plane.layout, engine, [ensure_kafdrop_image(engine, echo)])
            step("images imported" + (", ingress controller Ready" if ingress else ""))
        with node_services(plane, work, namespace) as services:
            step("Kafka and MinIO up on the gateway")
            kubectl = Kubectl(Path(info.kubeconfig))
            helm = Helm(Path(info.kubeconfig), work / "helm")
            chart = chart_without_dependencies(repo_root() / "charts" / "stockpipe", work / "chart")
            values = merged(services.values, INGRESS_VALUES) if ingress else services.values
            helm.run("install", release, str(chart), "-n", namespace, *values_args(values))
            deployment = NodeDeployment(plane, info, kubectl, helm, chart, namespace, release, services.broker,
                                        services.minio, values)  # fmt: skip
            deployment.wait_ready()
            step("every Deployment Ready")
            yield deployment
    finally:
        plane.down()


def restart_counts(pods: list[dict[str, Any]]) -> dict[str, int]:
    """{pod name: restarts of its containers}."""
    return {
        pod["metadata"]["name"]: sum(c.get("restartCount", 0) for c in pod["status"].get("containerStatuses", []))
        for pod in pods
    }


class TopicReader:
    """A topic of the local broker read without a consumer group: what the node's pods published."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from confluent_kafka import Consumer

        self.topic = topic
        self.bootstrap = bootstrap
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": "node-test-reader",  # never joins: partitions are assigned, offsets never committed
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        })  # fmt: skip
        metadata = self._consumer.list_topics(topic, timeout=30).topics[topic]
        self.partitions = sorted(metadata.partitions)

    def end_offsets(self) -> dict[int, int]:
        from confluent_kafka import TopicPartition

        return {p: self._consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=30)[1]
                for p in self.partitions}  # fmt: skip

    def committed(self, group_id: str) -> dict[int, int]:
        """The group's committed offset per partition (-1001 where it has none)."""
        from confluent_kafka import Consumer, TopicPartition

        reader = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group_id})
        try:
            tps = reader.committed([TopicPartition(self.topic, p) for p in self.partitions], timeout=30)
            return {tp.partition: tp.offset for tp in tps}
        finally:
            reader.close()

    def messages(
        self, start: dict[int, int], until: Callable[[dict[str, Any]], bool] | None = None, timeout_s: float = 60.0
    ) -> list[dict[str, Any]]:
        """JSON values from `start` on: up to the first one `until` accepts, or all up to the end offsets now.

        Raises TimeoutError when neither happens within timeout_s.
        """
        import orjson
        from confluent_kafka import TopicPartition

        end = self.end_offsets() if until is None else None
        self._consumer.assign([TopicPartition(self.topic, p, start.get(p, 0)) for p in self.partitions])
        seen: list[dict[str, Any]] = []
        position = dict(start)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if end is not None and all(position.get(p, 0) >= end[p] for p in self.partitions):
                return seen
            msg = self._consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            partition, offset = msg.partition(), msg.offset()
            if partition is not None and offset is not None:
                position[partition] = offset + 1
            try:
                value = orjson.loads(msg.value() or b"")
            except orjson.JSONDecodeError:
                continue
            if isinstance(value, dict):
                seen.append(value)
                if until is not None and until(value):
                    return seen
        raise TimeoutError(f"{self.topic}: not there after {timeout_s:.0f} s ({len(seen)} messages read)")

    def close(self) -> None:
        self._consumer.close()
