"""The continuous bronze loader in the chart: one writer, the real command and settings, its topic and ACLs.

Rendered from the ci value sets (whose objects test_render validates against Kubernetes' schemas and the
CRDs). The loader's environment is loaded into the loader's own settings class, so a variable the code
does not read (pydantic ignores unknown ones) or a secret file of the wrong name fails here, not in a pod.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from stockpipe.cli import app
from stockpipe.settings import SECRETS_DIR_VARIABLE, load_settings
from stockpipe.warehouse.continuous import ContinuousLoaderSettings
from stockpipe.warehouse.writerlock import lock_path
from tests.chart import charttools

SETS = ("defaults", "production", "stream-only", "external-services", "kind-quickstart")


@pytest.fixture(scope="module")
def rendered(helm_bin: Path, chart: Path) -> dict[str, list[dict[str, Any]]]:
    sets = {name: ["-f", str(charttools.VALUE_SETS[name])] for name in SETS}
    sets["defaults-disabled"] = ["--set", "bronzeLoader.enabled=false"]
    return {name: charttools.render(helm_bin, chart, args) for name, args in sets.items()}


def _of(objects: list[dict[str, Any]], kind: str, component: str | None = None) -> list[dict[str, Any]]:
    return [
        o
        for o in objects
        if o["kind"] == kind
        and (component is None or o["metadata"]["labels"].get("app.kubernetes.io/component") == component)
    ]


def _loader(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = _of(objects, "Deployment", "bronze-loader")
    return deployment


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    (container,) = containers
    return container


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


def _acls(objects: list[dict[str, Any]], user: str) -> set[tuple[str, str, tuple[str, ...]]]:
    (found,) = [u for u in _of(objects, "KafkaUser") if u["metadata"]["name"] == f"sp-stockpipe-{user}"]
    return {
        (a["resource"]["type"], a["resource"].get("name", ""), tuple(a["operations"]))
        for a in found["spec"]["authorization"]["acls"]
    }


def _field_exists(model: type[BaseModel], parts: list[str]) -> bool:
    field = model.model_fields.get(parts[0])
    if field is None:
        return False
    if len(parts) == 1:
        return True
    inner = field.annotation
    return isinstance(inner, type) and issubclass(inner, BaseModel) and _field_exists(inner, parts[1:])


@pytest.mark.parametrize("name", ["defaults", "production", "external-services", "kind-quickstart"])
def test_one_loader_that_never_overlaps_a_second(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    deployment = _loader(rendered[name])
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    # One replica: no PodDisruptionBudget (one would block every node drain).
    assert not _of(rendered[name], "PodDisruptionBudget", "bronze-loader")


def test_it_runs_the_real_command_from_the_jobs_image(rendered: dict[str, list[dict[str, Any]]]) -> None:
    container = _container(_loader(rendered["defaults"]))
    assert container["image"] == "stockpipe-jobs:0.1.0"  # dbt, DuckDB/Snowflake and the dbt project
    assert container["args"] == ["load", "continuous"]
    # The image's entrypoint is `stockpipe`: the command exists and takes no argument (options only).
    result = CliRunner().invoke(app, [*container["args"], "--help"], prog_name="stockpipe", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    usage = next(line.strip(" │") for line in result.output.splitlines() if "Usage:" in line)
    assert usage == "Usage: stockpipe load continuous [OPTIONS]"


@pytest.mark.parametrize("name", ["defaults", "production", "external-services"])
def test_its_environment_is_the_loaders_settings(
    rendered: dict[str, list[dict[str, Any]]], name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = _loader(rendered[name])
    container = _container(deployment)
    env = _env(container)
    unknown = [
        n
        for n in env
        if n != SECRETS_DIR_VARIABLE
        and not _field_exists(ContinuousLoaderSettings, n.removeprefix("STOCKPIPE_").lower().split("__"))
    ]
    assert not unknown, f"settings the loader does not read: {unknown}"
    # The Secret files as the projected volume names them (one file per setting), with stand-in values.
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for volume in deployment["spec"]["template"]["spec"]["volumes"]:
        for source in volume.get("projected", {}).get("sources", []):
            for item in source["secret"]["items"]:
                (secrets / item["path"]).write_text("stand-in\n", encoding="utf-8")
    for variable in [v for v in os.environ if v.startswith("STOCKPIPE_")]:
        monkeypatch.delenv(variable)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    if SECRETS_DIR_VARIABLE in env:
        monkeypatch.setenv(SECRETS_DIR_VARIABLE, str(secrets))
    if "STOCKPIPE_KAFKA__SSL_CA_LOCATION" in env:  # the Kafka CA Secret's file, checked to exist at start
        (tmp_path / "ca.crt").write_text("stand-in\n", encoding="utf-8")
        monkeypatch.setenv("STOCKPIPE_KAFKA__SSL_CA_LOCATION", str(tmp_path / "ca.crt"))

    settings = load_settings(ContinuousLoaderSettings)

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert settings.metrics_port == ports["metrics"] == 9103
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    # A cycle may wait twice for the writer lock (load, then build): liveness outlasts both waits.
    probe = container["livenessProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 2 * settings.lock_timeout_seconds
    assert settings.kafka.topic_lake_objects == "lake-objects"
    assert settings.kafka.create_topics is False
    assert settings.dbt_target_path.is_absolute()
    assert settings.dbt_target_path.is_relative_to("/tmp")
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert "/tmp" in mounts
    if name == "production":
        assert settings.warehouse.target == "snowflake"
        key = settings.warehouse.snowflake.private_key_file
        assert key is not None
        assert str(key.parent) in mounts
        assert mounts[str(key.parent)]["readOnly"] is True
        assert "warehouse" not in {v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]}
    else:
        assert settings.warehouse.target == "duckdb"
        mount = mounts[str(settings.warehouse.duckdb_path.parent)]
        assert mount["name"] == "warehouse"
        assert not mount.get("readOnly")
        # The writer lock lives beside the file, on the shared volume: every writer pod sees the same lock.
        assert lock_path(settings.warehouse.duckdb_path).parent == settings.warehouse.duckdb_path.parent


def test_the_loader_and_the_job_pods_share_the_warehouse_and_its_lock(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["defaults"]
    loader_spec = _loader(objects)["spec"]["template"]["spec"]
    loader_env = _env(_container(_loader(objects)))
    (jobs_env,) = [c for c in _of(objects, "ConfigMap") if c["metadata"]["name"] == "sp-stockpipe-jobs-env"]
    assert jobs_env["data"]["STOCKPIPE_WAREHOUSE__DUCKDB_PATH"] == loader_env["STOCKPIPE_WAREHOUSE__DUCKDB_PATH"]
    (job_pod,) = [spec for doc in objects for where, spec in charttools.pod_specs(doc) if "pod_template" in where]
    claims = [
        {v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
        for spec in (loader_spec, job_pod)
    ]
    (pvc,) = _of(objects, "PersistentVolumeClaim")
    assert claims == [{pvc["metadata"]["name"]}, {pvc["metadata"]["name"]}]
    # ReadWriteOnce by default: all of them on one node (kind); values.yaml says when to use ReadWriteMany.
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]


@pytest.mark.parametrize("name", ["defaults", "kind-quickstart", "production"])
def test_the_topic_and_the_acls_of_the_notices(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    objects = rendered[name]
    topics = {t["spec"]["topicName"]: t for t in _of(objects, "KafkaTopic")}
    assert topics["lake-objects"]["metadata"]["name"] == "sp-stockpipe-topic-lake-objects"
    assert topics["lake-objects"]["spec"]["partitions"] == 1
    assert topics["lake-objects"]["spec"]["replicas"] == topics["quotes"]["spec"]["replicas"]
    assert ("topic", "lake-objects", ("Write", "Describe")) in _acls(objects, "consumer")
    assert _acls(objects, "bronze-loader") == {
        ("topic", "lake-objects", ("Read", "Describe", "DescribeConfigs")),
        ("topic", "heartbeats", ("Write", "Describe")),
        ("group", "stockpipe-bronze-loader", ("Read", "Describe")),
    }
    consumer_env = _env(_container(_of(objects, "Deployment", "consumer")[0]))
    assert consumer_env["STOCKPIPE_KAFKA__TOPIC_LAKE_OBJECTS"] == "lake-objects"
    loader_env = _env(_container(_loader(objects)))
    assert loader_env["STOCKPIPE_KAFKA__SASL_USERNAME"] == "sp-stockpipe-bronze-loader"


def test_the_network_policy_lets_it_reach_kafka_and_be_scraped(rendered: dict[str, list[dict[str, Any]]]) -> None:
    policies = _of(rendered["defaults"], "NetworkPolicy")
    (policy,) = [p for p in policies if p["metadata"]["name"] == "sp-stockpipe-allow-bronze-loader"]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "bronze-loader"
    assert [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]] == [9103]
    kafka_ports = [
        p["port"]
        for rule in policy["spec"]["egress"]
        if any("podSelector" in t for t in rule.get("to", []))
        for p in rule["ports"]
    ]
    assert kafka_ports == [9093]


@pytest.mark.parametrize("name", ["stream-only", "defaults-disabled"])
def test_disabled_there_is_no_loader_no_topic_and_no_notices(
    rendered: dict[str, list[dict[str, Any]]], name: str
) -> None:
    objects = rendered[name]
    assert not _of(objects, "Deployment", "bronze-loader")
    assert "lake-objects" not in {t["spec"]["topicName"] for t in _of(objects, "KafkaTopic")}
    assert "sp-stockpipe-bronze-loader" not in {u["metadata"]["name"] for u in _of(objects, "KafkaUser")}
    assert not [acl for acl in _acls(objects, "consumer") if acl[1] == "lake-objects"]
    # An empty topic turns the consumer's notices off (nobody reads them, and no ACL would allow them).
    consumer_env = _env(_container(_of(objects, "Deployment", "consumer")[0]))
    assert consumer_env["STOCKPIPE_KAFKA__TOPIC_LAKE_OBJECTS"] == ""
