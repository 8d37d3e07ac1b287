"""Bad values are refused by `helm lint` and `helm template`, and the error names the field.

Most checks live in values.schema.json (both commands refuse), conditional requirements included (each
check lives in one place). Comparisons between two values (consumer replicas against partitions, min ISR
against replicas) and the Airflow subchart's wiring cannot be written in JSON Schema: a template `fail`
refuses them in `helm template`/`install`; `helm lint` downgrades `fail` to an [INFO] line that names the
field but passes (helm's lint mode), so for those the lint assertion is only that it names the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart import charttools

# (id, values merged over the defaults, text the error must contain: the field's name)
BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    ("typo-top-level", {"producr": {"enabled": True}}, "producr"),
    ("typo-nested", {"consumer": {"replcas": 2}}, "replcas"),
    ("consumer-replicas-over-partitions", {"consumer": {"replicas": 7}}, "consumer.replicas"),
    ("consumer-replicas-zero", {"consumer": {"replicas": 0}}, "/consumer/replicas"),
    ("replicas-as-string", {"consumer": {"replicas": "two"}}, "/consumer/replicas"),
    ("topic-partitions-zero", {"kafka": {"topics": {"quotes": {"partitions": 0}}}}, "/kafka/topics/quotes/partitions"),
    ("min-isr-over-replicas", {"kafka": {"replicas": 2, "minInsyncReplicas": 3}}, "kafka.minInsyncReplicas"),
    ("topic-replicas-over-nodes", {"kafka": {"replicas": 3, "strimzi": {"nodes": 1}}}, "kafka.replicas"),
    ("image-tag-latest", {"images": {"stockpipe": {"tag": "latest"}}}, "/images/stockpipe/tag"),
    ("pull-policy", {"images": {"jobs": {"pullPolicy": "Sometimes"}}}, "/images/jobs/pullPolicy"),
    ("root-uid", {"podSecurity": {"runAsUser": 0}}, "/podSecurity/runAsUser"),
    ("lake-mode", {"lake": {"mode": "nfs"}}, "/lake/mode"),
    ("tenant-without-config-secret", {"lake": {"mode": "tenant"}}, "/lake/tenant/configurationSecret"),
    ("bucket-name", {"lake": {"bucket": "My_Bucket"}}, "/lake/bucket"),
    ("endpoint-not-a-url", {"lake": {"endpoint": "minio:9000"}}, "/lake/endpoint"),
    ("finnhub-without-secret", {"producer": {"source": "finnhub"}}, "/secrets/finnhub/existingSecret"),
    ("unknown-source", {"producer": {"source": "bloomberg"}}, "/producer/source"),
    ("watchlist-lowercase-symbol", {"watchlist": {"symbols": ["aapl"]}}, "/watchlist/symbols/0"),
    ("watchlist-duplicate-symbol", {"watchlist": {"symbols": ["AAPL", "AAPL"]}}, "/watchlist/symbols"),
    ("watchlist-poll-too-fast", {"watchlist": {"pollIntervalSeconds": 1}}, "/watchlist/pollIntervalSeconds"),
    ("window-not-dividing-a-day", {"consumer": {"windowSeconds": 7}}, "/consumer/windowSeconds"),
    ("missing-limits", {"producer": {"resources": {"limits": None}}}, "/producer/resources"),
    (
        "cpu-not-a-quantity",
        {"consumer": {"resources": {"requests": {"cpu": "lots"}}}},
        "/consumer/resources/requests/cpu",
    ),
    (
        "external-kafka-without-bootstrap",
        {"kafka": {"external": {"enabled": True}}},
        "/kafka/external/bootstrapServers",
    ),
    (
        "external-sasl-without-secret",
        {"kafka": {"external": {"enabled": True, "bootstrapServers": "k:9092", "securityProtocol": "SASL_SSL"}}},
        "/kafka/external/sasl/username",
    ),
    ("security-protocol", {"kafka": {"external": {"securityProtocol": "TLS"}}}, "/kafka/external/securityProtocol"),
    ("snowflake-without-account", {"warehouse": {"target": "snowflake"}}, "/warehouse/snowflake/account"),
    (
        "snowflake-without-key",
        {"warehouse": {"target": "snowflake", "snowflake": {"account": "a", "user": "u"}}},
        "/secrets/snowflake/existingSecret",
    ),
    ("ingress-without-class", {"ingress": {"enabled": True}}, "/ingress/className"),
    ("ingress-host", {"ingress": {"hosts": {"dashboard": "Dash Board"}}}, "/ingress/hosts/dashboard"),
    ("secret-name", {"secrets": {"slack": {"existingSecret": "Slack_Webhook"}}}, "/secrets/slack/existingSecret"),
    ("env-not-a-setting", {"producer": {"env": {"PATH": "/tmp"}}}, "'PATH' does not match"),
    ("configmap-name", {"operator": {"configmapName": "Watch List"}}, "/operator/configmapName"),
    ("airflow-executor", {"airflow": {"executor": "CeleryExecutor"}}, "/airflow/executor"),
    ("dependency-switch", {"strimzi-kafka-operator": {"enabled": "yes"}}, "/strimzi-kafka-operator/enabled"),
    # The bronze loader is the single continuous writer: its replica count is no value at all.
    (
        "bronze-loader-replicas",
        {"bronzeLoader": {"replicas": 2}},
        "at '/bronzeLoader': additional properties 'replicas'",
    ),
    ("bronze-loader-switch", {"bronzeLoader": {"enabled": "yes"}}, "/bronzeLoader/enabled"),
    ("bronze-loader-settle", {"bronzeLoader": {"settleSeconds": 120}}, "/bronzeLoader/settleSeconds"),
    ("bronze-loader-lock-timeout", {"bronzeLoader": {"lockTimeoutSeconds": 0}}, "/bronzeLoader/lockTimeoutSeconds"),
    ("bronze-loader-group", {"bronzeLoader": {"groupId": "bronze loader"}}, "/bronzeLoader/groupId"),
    (
        "lake-objects-partitions",
        {"kafka": {"topics": {"lakeObjects": {"partitions": 0}}}},
        "/kafka/topics/lakeObjects/partitions",
    ),
    (
        "tenant-without-users",
        {
            "lake": {
                "mode": "tenant",
                "tenant": {"configurationSecret": "minio-env"},
                "credentials": {"existingSecret": "s3"},
            }
        },
        "/lake/tenant/users",
    ),
    (
        "stage-url-without-integration",
        {"warehouse": {"snowflake": {"stageUrl": "s3://lake/stage"}}},
        "/warehouse/snowflake/storageIntegration",
    ),
    ("image-digest", {"images": {"jobs": {"digest": "sha256:nothex"}}}, "/images/jobs/digest"),
    (
        "network-flow",
        {"producer": {"networkPolicy": {"egressTo": ["dns", "everywhere"]}}},
        "/producer/networkPolicy/egressTo/1",
    ),
    ("acl-topic-key", {"dashboard": {"kafkaUser": {"read": ["quotez"]}}}, "/dashboard/kafkaUser/read/0"),
    ("ingress-ui-switch", {"ingress": {"kafdrop": {"enabled": "yes"}}}, "/ingress/kafdrop/enabled"),
    (
        "airflow-env-configmap",
        {"airflow": {"extraEnvFrom": "- configMapRef:\n    name: someone-else\n"}},
        "airflow.extraEnvFrom",
    ),
    (
        "airflow-pod-template-volume",
        {"airflow": {"scheduler": {"extraVolumes": [{"name": "t", "configMap": {"name": "other"}}]}}},
        "airflow.scheduler.extraVolumes",
    ),
    (
        "airflow-pod-template-mount",
        {
            "airflow": {
                "scheduler": {"extraVolumeMounts": [{"name": "stockpipe-jobs-pod-template", "mountPath": "/elsewhere"}]}
            }
        },
        "airflow.scheduler.extraVolumeMounts",
    ),
    (
        "airflow-scheduler-account",
        {"airflow": {"scheduler": {"serviceAccount": {"create": False}}}},
        "airflow.scheduler.serviceAccount.name",
    ),
    (
        "warehouse-volume-one-pod",
        {"warehouse": {"duckdb": {"persistence": {"accessModes": ["ReadWriteOncePod"]}}}},
        "warehouse.duckdb.persistence.accessModes",
    ),
]

# Fields checked by a template `fail` only (cross-value comparisons).
TEMPLATE_CHECKS = {
    "airflow.extraEnvFrom",
    "airflow.scheduler.extraVolumes",
    "airflow.scheduler.extraVolumeMounts",
    "airflow.scheduler.serviceAccount.name",
    "consumer.replicas",
    "kafka.minInsyncReplicas",
    "kafka.replicas",
    "warehouse.duckdb.persistence.accessModes",
}


@pytest.mark.parametrize(("values", "field"), [(v, f) for _, v, f in BAD_VALUES], ids=[i for i, _, _ in BAD_VALUES])
def test_bad_values_are_refused_with_the_field_named(
    helm_bin: Path, chart: Path, tmp_path: Path, values: dict[str, Any], field: str
) -> None:
    path = tmp_path / "bad-values.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    template = charttools.helm(helm_bin, charttools.template_args(chart, ["-f", str(path)]))
    assert template.returncode != 0, f"helm template accepted {values}"
    assert field in template.stderr, f"helm template did not name {field}:\n{template.stderr}"
    lint = charttools.helm(helm_bin, charttools.lint_args(chart, ["-f", str(path)]))
    assert field in lint.stdout + lint.stderr, f"helm lint did not name {field}:\n{lint.stdout}{lint.stderr}"
    if field in TEMPLATE_CHECKS:
        assert "Fail: " in lint.stderr
    else:
        assert lint.returncode != 0, f"helm lint accepted {values}"


def test_there_are_at_least_twenty() -> None:
    assert len(BAD_VALUES) >= 20
