"""In kubernetes mode every job task is a KubernetesPodOperator whose pod validates against
Kubernetes' own schema (Pod, v1.33) and carries the settings: image, args, Secrets, service account."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import kubernetes_validate
import pytest

if TYPE_CHECKING:
    from stockpipe.orchestration.settings import AirflowSideSettings

DAGS = Path(__file__).resolve().parents[3] / "dags"
K8S_VERSION = "1.33.0"
JOB_TASKS = {
    ("lake_to_bronze", "load_bronze"): ["load", "bronze", "--listing", "recent"],
    ("daily_history", "history_daily"): ["history", "daily", "--date", "2025-12-01"],
    ("gap_backfill", "history_gaps"): ["history", "gaps", "--end", "2025-12-01"],
    ("backfill_ytd", "history_backfill"): [
        "history",
        "backfill",
        "--start",
        "2025-01-01",
        "--end",
        "2025-12-01",
        "--no-refetch",
    ],
    ("dbt_build", "dbt_build"): ["load", "dbt-build", "--changed-only"],
    ("pipeline_watch", "probe"): ["watch", "probe", "--as-of", "2025-12-01T23:30:00+00:00"],
    ("lake_compaction", "lake_compact"): ["lake", "compact", "--date", "2025-12-01"],
}
WITH_RESULT = {"load_bronze", "history_daily", "history_gaps", "history_backfill", "probe", "lake_compact"}


class FakeTI:
    """Just enough of a task instance for the templates (the gate's decision) and the pod's labels."""

    try_number = 1
    map_index = -1

    def __init__(self, dag_id: str, task_id: str) -> None:
        self.dag_id, self.task_id = dag_id, task_id

    def xcom_pull(self, task_ids: str, **_: Any) -> Any:
        assert task_ids == "session_gate"
        return _GATE[_current[0]]


_GATE: dict[str, Any] = {
    "daily_history": "2025-12-01",
    "gap_backfill": "2025-12-01",
    "lake_compaction": "2025-12-01",
    "backfill_ytd": {"start": "2025-01-01", "end": "2025-12-01", "sessions": 230},
}
_current = [""]


@pytest.fixture
def cluster_dags(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("STOCKPIPE_AIRFLOW__MODE", "kubernetes")
    monkeypatch.setenv("STOCKPIPE_AIRFLOW__IMAGE", "registry.example/stockpipe:1.2.3")
    monkeypatch.setenv("STOCKPIPE_AIRFLOW__NAMESPACE", "markets")
    monkeypatch.setenv("STOCKPIPE_AIRFLOW__SERVICE_ACCOUNT", "stockpipe-jobs")
    monkeypatch.setenv("STOCKPIPE_AIRFLOW__ENV_SECRETS", '["stockpipe-lake", "stockpipe-finnhub"]')
    monkeypatch.setenv("STOCKPIPE_AIRFLOW__ENV_CONFIGMAPS", '["stockpipe-config"]')
    monkeypatch.setenv("STOCKPIPE_AIRFLOW__POD_ENV", '{"STOCKPIPE_LOG_LEVEL": "INFO"}')
    monkeypatch.setenv("STOCKPIPE_AIRFLOW__RESOURCES__LIMIT_MEMORY", "3Gi")
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return dict(bag.dags)


def render_pod(dag: Any, task_id: str) -> dict[str, Any]:
    from kubernetes.client import ApiClient

    task = dag.get_task(task_id)
    _current[0] = dag.dag_id
    at = datetime(2025, 12, 1, 23, 30, tzinfo=UTC)
    context = {
        "ti": FakeTI(dag.dag_id, task_id),
        "run_id": "scheduled__2025-12-01T23:30:00+00:00",
        "params": {"refetch": False},
        "logical_date": at,
        "dag_run": SimpleNamespace(run_type="scheduled"),  # a scheduled run lists recent objects only
        "dag": dag,
    }
    task.render_template_fields(context)
    pod = task.build_pod_request_obj(context, dry_run=True)
    rendered: dict[str, Any] = ApiClient().sanitize_for_serialization(pod)
    return rendered


def test_every_job_pod_validates_against_the_kubernetes_schema(cluster_dags: dict[str, Any]) -> None:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    pods = [task for dag in cluster_dags.values() for task in dag.tasks if isinstance(task, KubernetesPodOperator)]
    assert {(t.dag_id, t.task_id) for t in pods} == set(JOB_TASKS)
    for (dag_id, task_id), args in JOB_TASKS.items():
        pod = render_pod(cluster_dags[dag_id], task_id)
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
        spec = pod["spec"]
        assert pod["metadata"]["namespace"] == "markets"
        assert spec["serviceAccountName"] == "stockpipe-jobs"
        # No identity of its own: the chart's pod template gives it (see the template test below).
        assert not spec.get("securityContext")
        base = next(c for c in spec["containers"] if c["name"] == "base")
        assert base["image"] == "registry.example/stockpipe:1.2.3"
        assert base["imagePullPolicy"] == "IfNotPresent"
        argv = base["command"] + base["args"]
        if task_id in WITH_RESULT:
            assert argv[:4] == [
                "python",
                "-m",
                "stockpipe.orchestration.jobrun",
                "--xcom-file=/airflow/xcom/return.json",
            ]
            assert argv[4:6] == ["--", "stockpipe"]
            assert argv[6:] == args, (dag_id, task_id)
            assert any(c["name"] == "airflow-xcom-sidecar" for c in spec["containers"])
        else:
            assert argv == ["stockpipe", *args]
        env_from = base["envFrom"]
        assert {"secretRef": {"name": "stockpipe-lake"}} in env_from
        assert {"secretRef": {"name": "stockpipe-finnhub"}} in env_from
        assert {"configMapRef": {"name": "stockpipe-config"}} in env_from
        assert {"name": "STOCKPIPE_LOG_LEVEL", "value": "INFO"} in base["env"]
        assert base["resources"] == {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "3Gi"}}
        assert not base.get("securityContext")
    broken = {**pod, "spec": {**pod["spec"], "containers": [{k: v for k, v in base.items() if k != "name"}]}}
    with pytest.raises(kubernetes_validate.ValidationError):  # the validator does reject a bad pod
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_the_pod_operator_settings_the_brief_fixes(cluster_dags: dict[str, Any]) -> None:
    task = cluster_dags["lake_to_bronze"].get_task("load_bronze")
    assert task.in_cluster is True
    assert task.get_logs is True
    assert str(getattr(task.on_finish_action, "value", task.on_finish_action)) == "delete_succeeded_pod"
    assert task.do_xcom_push is True
    assert [s.secret for s in task.secrets] == ["stockpipe-lake", "stockpipe-finnhub"]
    assert {s.deploy_type for s in task.secrets} == {"env"}


POD_TEMPLATE = """\
apiVersion: v1
kind: Pod
metadata:
  labels:
    app.kubernetes.io/component: job
spec:
  restartPolicy: Never
  securityContext:
    runAsNonRoot: true
    runAsUser: 20002
    runAsGroup: 20003
    fsGroup: 20003
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: base
      image: template-image:0
      securityContext:
        runAsUser: 20002
        readOnlyRootFilesystem: true
        allowPrivilegeEscalation: false
      volumeMounts:
        - name: warehouse
          mountPath: /var/lib/stockpipe/warehouse
  volumes:
    - name: warehouse
      persistentVolumeClaim:
        claimName: stockpipe-warehouse
"""


def settings_with(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> AirflowSideSettings:
    """The Airflow-side settings with one more environment variable (the cached ones left as they were)."""
    from stockpipe.orchestration.settings import airflow_settings

    monkeypatch.setenv(name, value)
    airflow_settings.cache_clear()
    try:
        return airflow_settings()
    finally:
        airflow_settings.cache_clear()


def test_the_charts_pod_template_is_merged_under_the_operators_fields(
    cluster_dags: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STOCKPIPE_AIRFLOW__POD_TEMPLATE_FILE (set by the chart) reaches the operator: the template's
    volumes and mounts stay, the operator's image and command win."""
    from stockpipe.orchestration.jobs import job_task

    template = tmp_path / "pod_template.yaml"
    template.write_text(POD_TEMPLATE)
    settings = settings_with(monkeypatch, "STOCKPIPE_AIRFLOW__POD_TEMPLATE_FILE", str(template))
    assert settings.pod_template_file == template
    dag = cluster_dags["dbt_build"]
    task = job_task("dbt_build_templated", ["load", "dbt-build"], settings=settings, dag=dag)
    pod = render_pod(dag, task.task_id)
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    base = next(c for c in pod["spec"]["containers"] if c["name"] == "base")
    assert base["image"] == "registry.example/stockpipe:1.2.3"
    assert base["command"] + base["args"] == ["stockpipe", "load", "dbt-build"]
    assert {"name": "warehouse", "mountPath": "/var/lib/stockpipe/warehouse"} in base["volumeMounts"]
    claim = {"name": "warehouse", "persistentVolumeClaim": {"claimName": "stockpipe-warehouse"}}
    assert claim in pod["spec"]["volumes"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "job"
    # The pod's identity is the template's (the chart's podSecurity), never one of the operator's own.
    assert pod["spec"]["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 20002,
        "runAsGroup": 20003,
        "fsGroup": 20003,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert base["securityContext"] == {
        "runAsUser": 20002,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
    }


def test_a_scheduler_outside_the_cluster_launches_pods_with_its_kubeconfig(
    cluster_dags: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stockpipe.orchestration.jobs import job_task

    kubeconfig = tmp_path / "kubeconfig"
    settings = settings_with(monkeypatch, "STOCKPIPE_AIRFLOW__KUBECONFIG", str(kubeconfig))
    task = job_task("outside", ["lake", "compact"], settings=settings, dag=cluster_dags["lake_compaction"])
    assert task.in_cluster is False
    assert task.config_file == str(kubeconfig)
