"""The chart's pods running for real on the local node (issue 19), one cluster and one install per module.

`helm install` with ci/local-node-values.yaml (the kind quickstart minus what cannot be pulled here:
Kafka and S3 are the local broker and MinIO on the bridge gateway) into a namespace enforcing the
restricted Pod Security Standard; the images are those of `make images`, imported into the node.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
import yaml
from confluent_kafka import Producer

from stockpipe.contracts.messages import WATERMARK_V1, iso
from stockpipe.orchestration.embedded import DagRunFailed, run_dag
from stockpipe_dev.localservices.kube.deploy import (
    NODE_IMAGES,
    NodeDeployment,
    TopicReader,
    deployed_on_node,
    restart_counts,
)
from stockpipe_dev.localservices.kube.node import NODE_NAME, missing_for_node
from stockpipe_dev.localservices.kube.tools import CommandError

# A real node, the images imported into it, minutes a module: `make e2e`, not `make test`.
pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "stockpipe-node"
COMPONENTS = ("producer", "consumer", "operator", "dashboard")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeDeployment]:
    if missing := missing_for_node("dockerd"):
        pytest.skip(f"the node needs {', '.join(missing)} (.ci/prereqs.sh installs them; CI runs as root)")
    work = tmp_path_factory.mktemp("chart-on-node")
    with deployed_on_node(work, namespace=NAMESPACE, images=(*NODE_IMAGES, "stockpipe-jobs"), echo=print) as deployed:
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


@pytest.fixture(scope="module")
def quotes(deployment: NodeDeployment) -> Iterator[TopicReader]:
    reader = TopicReader(deployment.broker.bootstrap, deployment.values["kafka"]["topics"]["quotes"]["name"])
    yield reader
    reader.close()


def _ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def _at(value: str) -> datetime:
    return _utc(datetime.fromisoformat(value))


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def test_watchlist_patch_reaches_the_running_producer(deployment: NodeDeployment, quotes: TopicReader) -> None:
    """`kubectl patch` (what `kubectl edit` sends): the operator renders the ConfigMap, the kubelet updates the
    mounted directory (syncFrequency 10 s), the producer re-reads it: AMZN streams, NVDA stops, no restart."""
    producers = restart_counts(deployment.pods("producer"))
    start = quotes.end_offsets()
    patched = time.monotonic()
    spec = {"spec": {"symbols": ["AAPL", "MSFT", "AMZN"]}}
    deployment.kubectl.run("patch", "tickerwatchlist", deployment.values["watchlist"]["name"], "-n", NAMESPACE,
                           "--type", "merge", "-p", json.dumps(spec))  # fmt: skip
    try:
        first = quotes.messages(start, until=lambda m: m.get("symbol") == "AMZN", timeout_s=150)[-1]
    except TimeoutError as exc:
        pytest.fail(f"{exc}\n{deployment.describe()}")
    print(f"watchlist patch -> first AMZN quote on the topic: {time.monotonic() - patched:.1f} s")
    time.sleep(15)  # more session minutes (a quote changes once a session minute, every 6 s at 10x)
    after = [m for m in quotes.messages(start) if "fetched_at" in m and _at(m["fetched_at"]) > _at(first["fetched_at"])]
    assert {m["symbol"] for m in after} == {"AAPL", "MSFT", "AMZN"}, after
    # The same pods, never restarted: the mounted directory changed under the running process.
    assert restart_counts(deployment.pods("producer")) == producers


def test_a_killed_consumer_pod_loses_and_doubles_nothing(deployment: NodeDeployment, quotes: TopicReader) -> None:
    """The consumer pod is force-deleted mid-stream (no clean shutdown); its Deployment's next pod resumes from
    the lake. Then the stream stops and every quote on the topic is in the lake exactly once."""
    consumer = deployment.deployment("consumer")
    env = {e["name"]: e.get("value") for e in consumer["spec"]["template"]["spec"]["containers"][0]["env"]}
    [old] = deployment.pods("consumer")
    flowing = quotes.end_offsets()
    quotes.messages(flowing, until=lambda m: m.get("schema") != WATERMARK_V1, timeout_s=60)  # the stream flows
    time.sleep(10)  # the consumer holds open files and uncommitted offsets
    deployment.kubectl.run("delete", "pod", old["metadata"]["name"], "-n", NAMESPACE, "--grace-period=0", "--force")
    deadline = time.monotonic() + 180
    while not [p for p in deployment.pods("consumer") if p["metadata"]["uid"] != old["metadata"]["uid"] and _ready(p)]:
        assert time.monotonic() < deadline, deployment.describe()
        time.sleep(2)
    time.sleep(15)  # the new pod writes while the stream goes on
    deployment.kubectl.run("scale", "deployment", f"{deployment.release}-stockpipe-producer", "-n", NAMESPACE,
                           "--replicas=0")  # fmt: skip
    deployment.kubectl.run("wait", "--for=delete", "pod", "-n", NAMESPACE, "--timeout=90s",
                           "-l", "app.kubernetes.io/component=producer", timeout_s=120)  # fmt: skip
    # Record time moves past every open file, so the consumer closes and commits all of them.
    producer = Producer({"bootstrap.servers": deployment.broker.bootstrap})
    mark = orjson.dumps({"schema": WATERMARK_V1, "watermark_ts": iso(datetime.now(UTC) + timedelta(days=2))})
    for partition in quotes.partitions:
        producer.produce(quotes.topic, mark, partition=partition)
    assert producer.flush(30) == 0
    end = quotes.end_offsets()
    deadline = time.monotonic() + 180
    while any(offset < end[p] for p, offset in quotes.committed(env["STOCKPIPE_GROUP_ID"]).items()):
        assert time.monotonic() < deadline, f"the consumer did not commit up to {end}\n{deployment.describe()}"
        time.sleep(2)
    published = [(m["symbol"], _at(m["quote_ts"])) for m in quotes.messages(dict.fromkeys(quotes.partitions, 0))
                 if m.get("schema") != WATERMARK_V1]  # fmt: skip
    in_lake = _lake_quotes(deployment)
    lost, doubled = Counter(published) - in_lake, in_lake - Counter(published)
    print(f"consumer pod killed: {len(published)} quotes published, {in_lake.total()} in the lake")
    assert (lost.total(), doubled.total()) == (0, 0), (lost, doubled)
    assert len(published) > 20


def _lake_quotes(deployment: NodeDeployment) -> Counter[tuple[str, datetime]]:
    """(symbol, quote_ts) of every quote row in the lake's stream objects."""
    lake = deployment.minio.filesystem()
    keys: Counter[tuple[str, datetime]] = Counter()
    for path in lake.find(f"{deployment.values['lake']['bucket']}/raw/quotes"):  # type: ignore[attr-defined]
        if path.endswith(".parquet"):
            with lake.open(path, "rb") as f:  # type: ignore[attr-defined]
                table = pq.read_table(f, columns=["symbol", "quote_ts"])
            keys.update((row["symbol"], _utc(row["quote_ts"])) for row in table.to_pylist())
    return keys


def test_a_dag_task_runs_its_job_as_a_pod_on_the_node(deployment: NodeDeployment, tmp_path: Path) -> None:
    """lake_compaction in kubernetes mode, from a scheduler process outside the cluster: the session gate runs
    in Airflow, `stockpipe lake compact` runs as a KubernetesPodOperator pod from the jobs image on the node,
    with the chart's job pod template and ConfigMap, and its JSON report comes back through the XCom sidecar.
    (After the previous test the stream is stopped and every file of the replayed session is closed.)"""
    job_maps = deployment.kubectl.json("get", "configmaps", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=job")
    by_key = {key: item for item in job_maps["items"] for key in item.get("data", {})}
    template = tmp_path / "pod_template.yaml"
    template.write_text(by_key["pod_template.yaml"]["data"]["pod_template.yaml"])
    env_configmap = next(i["metadata"]["name"] for i in job_maps["items"] if "pod_template.yaml" not in i["data"])
    account = yaml.safe_load(template.read_text())["spec"]["serviceAccountName"]
    before = _lake_quotes(deployment)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOCKPIPE_", "AIRFLOW"))}
    env |= {
        "STOCKPIPE_AIRFLOW__NAMESPACE": NAMESPACE,
        "STOCKPIPE_AIRFLOW__IMAGE": "stockpipe-jobs:dev",
        "STOCKPIPE_AIRFLOW__IMAGE_PULL_POLICY": "Never",
        "STOCKPIPE_AIRFLOW__SERVICE_ACCOUNT": account,
        "STOCKPIPE_AIRFLOW__ENV_CONFIGMAPS": json.dumps([env_configmap]),
        "STOCKPIPE_AIRFLOW__ENV_SECRETS": "[]",
        "STOCKPIPE_AIRFLOW__POD_TEMPLATE_FILE": str(template),
        "STOCKPIPE_AIRFLOW__KUBECONFIG": str(deployment.info.kubeconfig),
        "STOCKPIPE_AIRFLOW__RETRIES": "0",
        # The XCom sidecar's default image (alpine) cannot be pulled here; the stream image has a shell.
        "AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps(
            {"conn_type": "kubernetes", "extra": {"xcom_sidecar_container_image": "stockpipe:dev"}}
        ),
    }
    home = tmp_path / "airflow"
    try:
        outcome = run_dag("lake_compaction", datetime(2026, 11, 25, 22, tzinfo=UTC), env=env, home=home,
                          dags_folder=REPO / "dags", timeout_s=600, mode="kubernetes")  # fmt: skip
    except DagRunFailed as exc:
        pytest.fail(f"{exc}\n{deployment.describe()}")
    assert outcome.tasks == {"session_gate": "success", "lake_compact": "success"}
    with sqlite3.connect(home / "airflow.db") as db:
        [(value,)] = db.execute(
            "SELECT value FROM xcom WHERE dag_id = 'lake_compaction' AND task_id = 'lake_compact' AND key = ?",
            ("return_value",),
        ).fetchall()
    report = json.loads(value)
    report = json.loads(report) if isinstance(report, str) else report
    assert report["day"] == "2026-11-25"
    assert report["objects_before"] > report["objects_after"] > 0, report
    assert report["rows_rewritten"] > 0, report
    # The pod ran on this node, and the lake holds the same quotes in fewer objects.
    events = deployment.kubectl.json("get", "events", "-n", NAMESPACE, "--field-selector", "reason=Scheduled")
    assert any(e["involvedObject"]["name"].startswith("stockpipe-lake-compact") for e in events["items"]), events
    assert _lake_quotes(deployment) == before
