"""The chart by component: the shared pod knobs, per-component NetworkPolicies and ACLs as values, image
digests, the lake under the release's policies with a bucket-scoped user, release-scoped names, the Airflow
wiring, and what the Ingress exposes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart import charttools

REPO = charttools.REPO
TENANT = {
    "lake": {
        "mode": "tenant",
        "credentials": {"existingSecret": "lake-keys"},
        "tenant": {"configurationSecret": "minio-env", "users": ["lake-keys"]},
    }
}


def render(
    helm_bin: Path, chart: Path, tmp_path: Path, values: dict[str, Any], release: str = ""
) -> list[dict[str, Any]]:
    path = tmp_path / f"values-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    args = charttools.template_args(chart, ["-f", str(path)])
    if release:
        args[1] = release
    result = charttools.helm(helm_bin, args, check=True)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_name(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_each_component_has_its_folder() -> None:
    templates = charttools.CHART / "templates"
    for folder in ("producer", "consumer", "operator", "dashboard", "kafdrop", "jobs/bronze-loader", "kafka", "lake"):
        assert (templates / folder / ("kafka.yaml" if folder == "kafka" else "")).exists(), folder
    for component in ("producer", "consumer", "dashboard", "kafdrop", "jobs/bronze-loader"):
        names = {p.name for p in (templates / component).glob("*.yaml")}
        assert {"deployment.yaml", "serviceaccount.yaml", "networkpolicy.yaml", "kafkauser.yaml"} <= names, component
    assert not list(templates.glob("deployment.yaml"))


def test_new_knobs_at_their_defaults_render_nothing_but_each_workload_gets_them(
    helm_bin: Path, chart: Path, tmp_path: Path
) -> None:
    defaults = by_name(render(helm_bin, chart, tmp_path, {}), "Deployment")
    for deployment in defaults.values():
        pod = deployment["spec"]["template"]["spec"]
        assert not {"affinity", "topologySpreadConstraints", "nodeSelector", "tolerations"} & set(pod)
        assert pod["serviceAccountName"] == deployment["metadata"]["name"]  # its own
    knobs = {
        "podAnnotations": {"example.com/team": "markets"},
        "nodeSelector": {"pool": "stream"},
        "tolerations": [{"key": "stream", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {}},
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"}
        ],
        "serviceAccount": {"create": False, "name": "shared"},
    }
    keys = ["producer", "consumer", "bronzeLoader", "operator", "kafdrop", "dashboard"]
    objects = render(helm_bin, chart, tmp_path, {key: knobs for key in keys})
    deployments = by_name(objects, "Deployment")
    assert len(deployments) == len(keys)
    for deployment in deployments.values():
        template = deployment["spec"]["template"]
        pod = template["spec"]
        assert template["metadata"]["annotations"]["example.com/team"] == "markets"
        assert pod["nodeSelector"] == {"pool": "stream"}
        assert pod["tolerations"] == knobs["tolerations"]
        assert pod["affinity"] == {"nodeAffinity": {}}
        assert pod["topologySpreadConstraints"] == knobs["topologySpreadConstraints"]
        assert pod["serviceAccountName"] == "shared"
    assert not [sa for sa in by_name(objects, "ServiceAccount") if sa.endswith(("-producer", "-dashboard"))]
    # Kafdrop's client properties live in a ConfigMap: their checksum restarts it when they change.
    assert "checksum/config" in deployments["sp-stockpipe-kafdrop"]["spec"]["template"]["metadata"]["annotations"]


def test_an_image_digest_pins_the_image(helm_bin: Path, chart: Path, tmp_path: Path) -> None:
    digest = "sha256:" + "ab" * 32
    objects = render(
        helm_bin, chart, tmp_path, {"images": {"stockpipe": {"digest": digest}, "jobs": {"digest": digest}}}
    )
    producer = by_name(objects, "Deployment")["sp-stockpipe-producer"]
    assert producer["spec"]["template"]["spec"]["containers"][0]["image"] == f"stockpipe@{digest}"
    airflow_env = by_name(objects, "ConfigMap")["stockpipe-airflow-env"]["data"]
    assert airflow_env["STOCKPIPE_AIRFLOW__IMAGE"] == f"stockpipe-jobs@{digest}"


def test_network_policies_and_acls_follow_each_components_values(helm_bin: Path, chart: Path, tmp_path: Path) -> None:
    extra = {"to": [{"ipBlock": {"cidr": "10.9.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 8443}]}
    objects = render(
        helm_bin,
        chart,
        tmp_path,
        {
            "producer": {
                "networkPolicy": {"egressTo": ["dns", "kafka"], "extraEgress": [extra]},
                "kafkaUser": {"write": ["quotes"], "read": [], "extraAcls": []},
            }
        },
    )
    policy = by_name(objects, "NetworkPolicy")["sp-stockpipe-allow-producer"]
    assert len(policy["spec"]["egress"]) == 3
    assert policy["spec"]["egress"][-1] == extra
    acls = by_name(objects, "KafkaUser")["sp-stockpipe-producer"]["spec"]["authorization"]["acls"]
    assert [(a["resource"]["name"], a["operations"]) for a in acls] == [("quotes", ["Write", "Describe"])]


def test_the_lake_is_under_the_releases_policies_and_its_user_is_bucket_scoped(
    helm_bin: Path, chart: Path, tmp_path: Path
) -> None:
    objects = render(helm_bin, chart, tmp_path, TENANT)
    tenant = by_name(objects, "Tenant")["lake"]
    pool_labels = tenant["spec"]["poolsMetadata"]["labels"]
    policies = by_name(objects, "NetworkPolicy")
    deny = policies["sp-stockpipe-default-deny"]["spec"]["podSelector"]["matchLabels"]
    assert deny.items() <= pool_labels.items(), "the operator labels tenant pods from poolsMetadata"
    lake = policies["sp-stockpipe-allow-lake"]["spec"]
    assert lake["podSelector"]["matchLabels"] == {"v1.min.io/tenant": "lake"}
    clients = {(p["podSelector"]["matchLabels"].get("app.kubernetes.io/component")) for p in lake["ingress"][0]["from"]}
    assert clients == {"consumer", "bronze-loader", "dashboard", "test", "job", "lake-policy"}
    assert "producer" not in clients
    assert "kafdrop" not in clients
    # The workloads' user: a policy on the lake bucket only, consoleAdmin detached by the hook Job.
    policy = json.loads(by_name(objects, "ConfigMap")["sp-stockpipe-lake-policy"]["data"]["policy.json"])
    resources = {r for statement in policy["Statement"] for r in statement["Resource"]}
    assert resources == {"arn:aws:s3:::lake", "arn:aws:s3:::lake/*"}
    actions = {a for statement in policy["Statement"] for a in statement["Action"]}
    assert not {a for a in actions if "Bucket" in a and not a.startswith(("s3:List", "s3:GetBucketLocation"))}
    assert "s3:DeleteBucket" not in actions
    assert "admin:*" not in actions
    job = by_name(objects, "Job")["sp-stockpipe-lake-policy"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    assert "detach lake consoleAdmin" in job["spec"]["template"]["spec"]["containers"][0]["args"][0]


def test_two_releases_share_a_namespace(helm_bin: Path, chart: Path, tmp_path: Path) -> None:
    values = yaml.safe_load(charttools.VALUE_SETS["stream-only"].read_text(encoding="utf-8"))
    names: list[set[tuple[str, str]]] = []
    for release in ("east", "west"):
        # The names a user picks (the watchlist to edit, the ConfigMap the Airflow subchart mounts) are values.
        release_values = {
            **values,
            "jobs": {"podTemplateConfigMapName": f"{release}-jobs-pod-template"},
            "watchlist": {"name": release},
        }
        objects = render(helm_bin, chart, tmp_path, release_values, release=release)
        names.append({(o["kind"], o["metadata"]["name"]) for o in objects})
    assert not names[0] & names[1], sorted(names[0] & names[1])


def test_airflow_wiring_and_pod_launcher(helm_bin: Path, chart: Path, tmp_path: Path) -> None:
    objects = render(helm_bin, chart, tmp_path, {})
    binding = by_name(objects, "RoleBinding")["sp-stockpipe-pod-launcher"]
    # The official chart's name for the scheduler's ServiceAccount: <release>-airflow-scheduler.
    assert [s["name"] for s in binding["subjects"]] == ["sp-airflow-scheduler"]
    without = render(helm_bin, chart, tmp_path, {"airflow": {"enabled": False}})
    assert "sp-stockpipe-pod-launcher" not in by_name(without, "Role")
    assert "sp-stockpipe-pod-launcher" not in by_name(without, "RoleBinding")
    values = yaml.safe_load((charttools.CHART / "values.yaml").read_text(encoding="utf-8"))["airflow"]
    assert values["migrateDatabaseJob"]["useHelmHooks"] is False  # else `helm install --wait` never ends
    assert values["createUserJob"]["useHelmHooks"] is False


def test_skaffold_forwards_the_services_the_chart_names(helm_bin: Path, chart: Path, tmp_path: Path) -> None:
    skaffold = yaml.safe_load((REPO / "skaffold.yaml").read_text(encoding="utf-8"))
    forwarded = {f["resourceName"] for f in skaffold["portForward"]}
    objects = render(
        helm_bin,
        chart,
        tmp_path,
        {"ingress": {"enabled": True, "className": "traefik"}},
        release="stockpipe",
    )
    airflow = by_name(objects, "Ingress")["stockpipe-airflow"]
    backend = airflow["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
    assert backend == "stockpipe-airflow-api-server"
    assert forwarded == {backend, *(s for s in by_name(objects, "Service"))}


@pytest.mark.parametrize("ui", ["kafdrop", "dashboard"])
def test_uis_without_a_login_need_an_explicit_value_for_the_ingress(
    helm_bin: Path, chart: Path, tmp_path: Path, ui: str
) -> None:
    ingress = {"enabled": True, "className": "traefik"}
    default = by_name(render(helm_bin, chart, tmp_path, {"ingress": ingress}), "Ingress")
    assert set(default) == {"sp-stockpipe-airflow"}
    auth = {"traefik.ingress.kubernetes.io/router.middlewares": "stockpipe-basic-auth@kubernetescrd"}
    exposed = by_name(
        render(helm_bin, chart, tmp_path, {"ingress": {**ingress, ui: {"enabled": True, "annotations": auth}}}),
        "Ingress",
    )
    assert exposed[f"sp-stockpipe-{ui}"]["metadata"]["annotations"] == auth
    assert "annotations" not in exposed["sp-stockpipe-airflow"]["metadata"]
