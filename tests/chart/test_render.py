"""The chart's four value sets (and the external-services one) lint, render, and every object they render
validates against Kubernetes 1.34's schemas or its CRD, and meets the restricted Pod Security Standard."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.chart import charttools

VALUE_SETS = charttools.VALUE_SETS
REQUIRED_SETS = {"defaults", "kind-quickstart", "production", "stream-only", "external-services"}


def test_the_value_sets_are_there() -> None:
    assert set(VALUE_SETS) >= REQUIRED_SETS, sorted(VALUE_SETS)


@pytest.fixture(scope="module")
def rendered(helm_bin: Path, chart: Path) -> dict[str, list[dict[str, Any]]]:
    return {name: charttools.render(helm_bin, chart, ["-f", str(path)]) for name, path in VALUE_SETS.items()}


@pytest.mark.parametrize("name", sorted(REQUIRED_SETS))
def test_lint_is_clean(helm_bin: Path, chart: Path, name: str) -> None:
    result = charttools.helm(helm_bin, charttools.lint_args(chart, ["-f", str(VALUE_SETS[name])]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout, result.stdout
    assert "[ERROR]" not in result.stdout, result.stdout


@pytest.mark.parametrize("name", sorted(REQUIRED_SETS))
def test_every_object_validates(
    rendered: dict[str, list[dict[str, Any]]], crd_schemas: dict[tuple[str, str, str], dict[str, Any]], name: str
) -> None:
    objects = rendered[name]
    assert objects
    problems: list[str] = []
    for doc in objects:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        group = doc["apiVersion"].rpartition("/")[0]
        if "." in group and not group.endswith(".k8s.io"):
            problems += [f"{where}: {e}" for e in charttools.crd_errors(doc, crd_schemas)]
            continue
        try:
            kubernetes_validate.validate(doc, charttools.KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{where}: {exc.message} at {'/'.join(map(str, exc.path))}")
        for inner_where, spec in charttools.pod_specs(doc):
            if inner_where != where:  # the job pods' template, kept in a ConfigMap
                pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "job"}, "spec": spec}
                try:
                    kubernetes_validate.validate(pod, charttools.KUBE_VERSION, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    problems.append(f"{inner_where}: {exc.message}")
    assert not problems, "\n".join(problems)


def test_crd_validation_catches_a_typo(crd_schemas: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    """The CRD check is strict: a misspelled field is an error (the API server would prune it silently)."""
    topic = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {"name": "t"},
        "spec": {"partitions": 3, "replicaz": 3},
    }
    assert any("replicaz" in e for e in charttools.crd_errors(topic, crd_schemas))


@pytest.mark.parametrize("name", sorted(REQUIRED_SETS))
def test_every_pod_is_restricted_bounded_and_probed(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    problems: list[str] = []
    for doc in rendered[name]:
        for where, spec in charttools.pod_specs(doc):
            pod_sc = spec.get("securityContext", {})
            seccomp = pod_sc.get("seccompProfile", {}).get("type")
            if pod_sc.get("runAsNonRoot") is not True or seccomp != "RuntimeDefault":
                problems.append(f"{where}: pod securityContext not restricted")
            for volume in spec.get("volumes", []):
                if "hostPath" in volume:
                    problems.append(f"{where}: hostPath volume {volume['name']}")
            for container in spec.get("initContainers", []) + spec["containers"]:
                c = f"{where}/{container['name']}"
                sc = container.get("securityContext", {})
                checks = {
                    "runAsNonRoot": sc.get("runAsNonRoot") is True,
                    "numeric runAsUser": isinstance(sc.get("runAsUser"), int) and sc["runAsUser"] > 0,
                    "readOnlyRootFilesystem": sc.get("readOnlyRootFilesystem") is True,
                    "allowPrivilegeEscalation false": sc.get("allowPrivilegeEscalation") is False,
                    "drop ALL": sc.get("capabilities", {}).get("drop") == ["ALL"],
                    "no added capabilities": not sc.get("capabilities", {}).get("add"),
                    "RuntimeDefault seccomp": sc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
                    "requests and limits": all(
                        container.get("resources", {}).get(k, {}).get(r)
                        for k in ("requests", "limits")
                        for r in ("cpu", "memory")
                    ),
                    "/tmp is a writable emptyDir": any(
                        m["mountPath"] == "/tmp"
                        and any(v["name"] == m["name"] and "emptyDir" in v for v in spec.get("volumes", []))
                        for m in container.get("volumeMounts", [])
                    ),
                }
                if doc["kind"] == "Deployment":
                    checks["liveness probe"] = "livenessProbe" in container
                    checks["readiness probe"] = "readinessProbe" in container
                problems += [f"{c}: {check}" for check, ok in checks.items() if not ok]
    assert not problems, "\n".join(problems)


def _by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def _deployment(objects: list[dict[str, Any]], component: str) -> dict[str, Any]:
    (found,) = [
        o
        for o in _by_kind(objects, "Deployment")
        if o["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    return found


def test_the_watchlist_is_mounted_as_a_directory(rendered: dict[str, list[dict[str, Any]]]) -> None:
    producer = _deployment(rendered["defaults"], "producer")
    spec = producer["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "watchlist")
    assert "subPath" not in mount, "a subPath mount never sees the operator's updates"
    assert env["STOCKPIPE_WATCHLIST_FILE"] == f"{mount['mountPath']}/watchlist.json"
    volume = next(v for v in spec["volumes"] if v["name"] == "watchlist")
    assert volume["configMap"]["name"] == "sp-stockpipe-watchlist"  # release-scoped


def test_the_operator_role_is_the_rules_file(rendered: dict[str, list[dict[str, Any]]]) -> None:
    rules = yaml.safe_load((charttools.CHART / "operator-rbac-rules.yaml").read_text(encoding="utf-8"))
    # The ConfigMap's name is the release's (<fullname>-watchlist by default), templated into the rules file's.
    for rule in rules:
        if "resourceNames" in rule:
            rule["resourceNames"] = ["sp-stockpipe-watchlist"]
    (role,) = [r for r in _by_kind(rendered["defaults"], "Role") if r["metadata"]["name"].endswith("-operator")]
    assert role["rules"] == rules
    assert not _by_kind(rendered["defaults"], "ClusterRole")


def test_the_operator_role_follows_the_configmap_name(helm_bin: Path, chart: Path) -> None:
    objects = charttools.render(helm_bin, chart, ["--set", "operator.configmapName=tickers"])
    (role,) = [r for r in _by_kind(objects, "Role") if r["metadata"]["name"].endswith("-operator")]
    named = [r for r in role["rules"] if "resourceNames" in r]
    assert named == [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["tickers"], "verbs": ["get", "patch"]}
    ]
    producer = _deployment(objects, "producer")
    assert any(v.get("configMap", {}).get("name") == "tickers" for v in producer["spec"]["template"]["spec"]["volumes"])


def test_workloads_never_create_topics_and_use_their_own_kafka_user(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["defaults"]
    users = {u["metadata"]["name"] for u in _by_kind(objects, "KafkaUser")}
    topics = {t["spec"]["topicName"]: t for t in _by_kind(objects, "KafkaTopic")}
    assert set(topics) == {"quotes", "trades", "dlq", "heartbeats", "lake-objects"}
    assert {(t["spec"]["replicas"], t["spec"]["config"]["min.insync.replicas"]) for t in topics.values()} == {(3, "2")}
    for component in ("producer", "consumer", "bronze-loader"):
        container = _deployment(objects, component)["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["STOCKPIPE_KAFKA__CREATE_TOPICS"] == "false"
        assert env["STOCKPIPE_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["STOCKPIPE_KAFKA__SASL_USERNAME"] in users
        assert env["STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS"] == "sp-stockpipe-kafka-kafka-bootstrap.stockpipe.svc:9093"
        volumes = container["volumeMounts"]
        assert {"name": "secrets", "mountPath": "/var/run/secrets/stockpipe", "readOnly": True} in volumes
    quickstart = {t["spec"]["topicName"]: t for t in _by_kind(rendered["kind-quickstart"], "KafkaTopic")}
    assert {(t["spec"]["replicas"], t["spec"]["config"]["min.insync.replicas"]) for t in quickstart.values()} == {
        (1, "1")
    }


def test_the_producer_may_only_write_its_topics(rendered: dict[str, list[dict[str, Any]]]) -> None:
    users = _by_kind(rendered["defaults"], "KafkaUser")
    (producer,) = [u for u in users if u["metadata"]["name"].endswith("-producer")]
    acls = producer["spec"]["authorization"]["acls"]
    assert {(a["resource"]["name"], tuple(a["operations"])) for a in acls} == {
        ("quotes", ("Write", "Describe")),
        ("trades", ("Write", "Describe")),
        ("heartbeats", ("Write", "Describe")),
    }


def test_external_services_render_no_operator_objects(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["external-services"]
    assert not [o for o in objects if o["apiVersion"].startswith(("kafka.strimzi.io", "minio.min.io"))]
    container = _deployment(objects, "consumer")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS"] == "10.88.0.1:19092"
    assert env["STOCKPIPE_KAFKA__SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert env["STOCKPIPE_LAKE__S3_ENDPOINT_URL"] == "http://10.88.0.1:19000"


def test_production_uses_snowflake_and_external_s3(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["production"]
    assert not _by_kind(objects, "Tenant")
    assert not _by_kind(objects, "PersistentVolumeClaim")
    dashboard = _deployment(objects, "dashboard")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in dashboard["containers"][0]["env"]}
    assert env["STOCKPIPE_WAREHOUSE__TARGET"] == "snowflake"
    assert env["STOCKPIPE_LAKE__URL"] == "s3://acme-stockpipe-lake/prod"
    assert {p["metadata"]["name"] for p in _by_kind(objects, "PodDisruptionBudget")} == {
        "sp-stockpipe-consumer",
        "sp-stockpipe-dashboard",
    }
    assert {i["spec"]["ingressClassName"] for i in _by_kind(objects, "Ingress")} == {"contour"}


def test_stream_only_has_no_web_uis(rendered: dict[str, list[dict[str, Any]]]) -> None:
    components = {
        d["metadata"]["labels"]["app.kubernetes.io/component"] for d in _by_kind(rendered["stream-only"], "Deployment")
    }
    assert components == {"producer", "consumer", "operator"}


def test_no_secret_is_rendered(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Secrets only by reference: the chart never writes one (so none can have a default)."""
    for objects in rendered.values():
        assert not _by_kind(objects, "Secret")


def test_without_the_operator_the_producer_streams_its_own_symbols(helm_bin: Path, chart: Path) -> None:
    objects = charttools.render(helm_bin, chart, ["--set", "operator.enabled=false", "--set", "watchlist.create=false"])
    spec = _deployment(objects, "producer")["spec"]["template"]["spec"]
    env = {e["name"] for e in spec["containers"][0]["env"]}
    assert "STOCKPIPE_WATCHLIST_FILE" not in env
    assert not [v for v in spec["volumes"] if "configMap" in v]
    assert not [r for r in _by_kind(objects, "Role") if r["metadata"]["name"].endswith("-operator")]


def test_the_dashboard_reads_lag_and_heartbeats_but_never_joins_the_consumers_group(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    users = _by_kind(rendered["defaults"], "KafkaUser")
    (dashboard,) = [u for u in users if u["metadata"]["name"].endswith("-dashboard")]
    grants = {
        (a["resource"]["type"], a["resource"].get("name")): a["operations"]
        for a in dashboard["spec"]["authorization"]["acls"]
    }
    assert grants[("group", "stockpipe-lake-writer")] == ["Describe"]
    assert grants[("topic", "quotes")] == ["Describe"]
    assert "Read" in grants[("topic", "heartbeats")]
    assert not [ops for ops in grants.values() if "Write" in ops]


def _notes(helm_bin: Path, chart: Path, tmp_path: Path, values: Path) -> str:
    """NOTES.txt as `helm install` prints it (helm template skips it: render it through a YAML wrapper)."""
    copy = tmp_path / "notes-chart"
    shutil.copytree(chart, copy)
    notes = (copy / "templates" / "NOTES.txt").read_text(encoding="utf-8")
    (copy / "templates" / "zz-notes.yaml").write_text(
        '{{- define "notes-under-test" }}' + notes + '{{- end }}\nnotes: {{ include "notes-under-test" . | toJson }}\n',
        encoding="utf-8",
    )
    objects = charttools.render(helm_bin, copy, ["-f", str(values), "--show-only", "templates/zz-notes.yaml"])
    return str(objects[0]["notes"])


def test_notes_give_the_urls_and_the_edit_line(helm_bin: Path, chart: Path, tmp_path: Path) -> None:
    notes = _notes(helm_bin, chart, tmp_path, VALUE_SETS["kind-quickstart"])
    assert "kubectl edit -n stockpipe tw tech-megacaps" in notes
    for host in ("airflow", "kafdrop", "dashboard"):
        assert f"http://{host}.stockpipe.localhost/" in notes
    assert "helm test -n stockpipe sp" in notes
    production = _notes(helm_bin, chart, tmp_path / "p", VALUE_SETS["production"])
    assert "https://airflow.stockpipe.example.com/" in production
    # No login of their own: production keeps Kafdrop and the dashboard inside the cluster.
    assert "https://dashboard.stockpipe.example.com/" not in production
    assert "svc/sp-stockpipe-dashboard 8501:8501" in production


def test_the_airflow_ingress_points_at_the_airflow_charts_api_server(rendered: dict[str, list[dict[str, Any]]]) -> None:
    ingresses = {i["metadata"]["name"]: i for i in _by_kind(rendered["kind-quickstart"], "Ingress")}
    backend = ingresses["sp-stockpipe-airflow"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "sp-airflow-api-server", "port": {"number": 8080}}
