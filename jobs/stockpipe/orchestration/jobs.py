"""The task factory: one pipeline job per task, as a pod in a cluster or a local process on one machine.

`job_task("load_bronze", ["load", "bronze"], result=True)` is `stockpipe load bronze` either way:
  kubernetes  KubernetesPodOperator from the pipeline image (in_cluster, namespace, service account,
              image, pull policy and resources from settings; environment from Secrets/ConfigMaps)
  embedded    EmbeddedJobOperator: the same argv as a child process of the Airflow worker
`STOCKPIPE_AIRFLOW__MODE` decides, once, at parse time. Arguments are Jinja templates in both modes.
With result=True the job's JSON summary (its last stdout line) becomes the task's XCom return value.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from stockpipe.orchestration.jobrun import XCOM_FILE, JobFailed, run_job
from stockpipe.orchestration.settings import AirflowSideSettings, airflow_settings

RESULT_WRAPPER = ["python", "-m", "stockpipe.orchestration.jobrun", f"--xcom-file={XCOM_FILE}", "--"]
POD_LABELS = {"app.kubernetes.io/name": "stockpipe", "app.kubernetes.io/component": "job"}


class EmbeddedJobOperator(BaseOperator):
    """Runs `stockpipe <arguments>` as a local process; fails the task when the job fails."""

    template_fields: Sequence[str] = ("arguments",)
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        arguments: Sequence[str],
        command: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
        push_result: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(do_xcom_push=push_result, **kwargs)
        self.arguments = list(arguments)
        self.command = list(command) if command else None
        self.env = dict(env or {})

    def execute(self, context: Any) -> Any:
        argv = [*(self.command or airflow_settings().embedded_argv()), *self.arguments]
        self.log.info("running %s", " ".join(argv))

        def echo(stream: str, line: str) -> None:
            self.log.info("%s", line) if stream == "stdout" else self.log.info("| %s", line)

        timeout = self.execution_timeout.total_seconds() if self.execution_timeout else None
        result = run_job(argv, env={**os.environ, **self.env}, timeout_s=timeout, echo=echo)
        if result.returncode != 0:
            raise AirflowException(str(JobFailed(["stockpipe", *self.arguments], result.returncode, result.last_error)))
        return result.summary


def _pod_kwargs(settings: AirflowSideSettings, task_id: str, argv: list[str], result: bool) -> dict[str, Any]:
    from airflow.providers.cncf.kubernetes import secret
    from kubernetes.client import models as k8s  # type: ignore[import-untyped]  # no stubs published

    env_secret: Any = secret.Secret  # untyped

    resources = settings.resources.as_dict()
    # Pod identity (user, group, fsGroup) and the base container's security context come from the chart's
    # pod template only (STOCKPIPE_AIRFLOW__POD_TEMPLATE_FILE): nothing here overrides them. The XCom
    # sidecar is the operator's own container, absent from the template: it gets the restricted minimum
    # and runs as the pod's user.
    sidecar_security = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    # With a result, the wrapper writes the job's last stdout line where the XCom sidecar reads it.
    if result:
        cmds, arguments = RESULT_WRAPPER[:1], [*RESULT_WRAPPER[1:], "stockpipe", *argv]
    else:
        cmds, arguments = ["stockpipe"], argv
    template = {"pod_template_file": str(settings.pod_template_file)} if settings.pod_template_file else {}
    # In the cluster (the chart's Airflow) the scheduler's own service account; outside it, a kubeconfig.
    client = {"in_cluster": False, "config_file": str(settings.kubeconfig)} if settings.kubeconfig else {}
    return {
        **template,
        "in_cluster": True,
        **client,
        "namespace": settings.namespace,
        "image": settings.image,
        "image_pull_policy": settings.image_pull_policy,
        "service_account_name": settings.service_account,
        "name": f"stockpipe-{task_id.replace('_', '-')}",
        "labels": {**POD_LABELS, "stockpipe.io/task": task_id.replace("_", "-")},
        "cmds": cmds,
        "arguments": arguments,
        "env_vars": dict(settings.pod_env),
        "secrets": [env_secret("env", None, name) for name in settings.env_secrets],
        "configmaps": list(settings.env_configmaps),
        "container_resources": k8s.V1ResourceRequirements(requests=resources["requests"], limits=resources["limits"]),
        "xcom_sidecar_container_security_context": sidecar_security,
        "automount_service_account_token": False,  # jobs never talk to the Kubernetes API
        "get_logs": True,
        "do_xcom_push": result,
        "on_finish_action": "delete_succeeded_pod",  # failed pods stay for `kubectl describe`
        "startup_timeout_seconds": settings.startup_timeout_s,
    }


def job_task(
    task_id: str,
    argv: Sequence[str],
    *,
    result: bool = False,
    warehouse: bool = False,
    settings: AirflowSideSettings | None = None,
    **kwargs: Any,
) -> BaseOperator:
    """A task running `stockpipe <argv>`; result=True pushes its JSON summary; warehouse=True uses the pool."""
    settings = settings or airflow_settings()
    common: dict[str, Any] = {
        "task_id": task_id,
        "retries": settings.retries,
        "retry_delay": timedelta(seconds=settings.retry_delay_s),
        "execution_timeout": timedelta(minutes=settings.job_timeout_minutes),
    }
    if warehouse and settings.warehouse_pool:
        common["pool"] = settings.warehouse_pool
    common.update(kwargs)
    if settings.mode == "kubernetes":
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

        return KubernetesPodOperator(**_pod_kwargs(settings, task_id, list(argv), result), **common)
    return EmbeddedJobOperator(arguments=argv, env=settings.pod_env, push_result=result, **common)
