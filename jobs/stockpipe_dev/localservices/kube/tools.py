"""kubectl and helm against a local cluster, and a ServiceAccount's own kubeconfig (for tests and the bench)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stockpipe_dev.localservices.kube.layout import ClusterInfo, write_kubeconfig
from stockpipe_dev.localservices.process import ServiceError
from stockpipe_dev.localservices.toolchain import helm_path, require

RESTRICTED_LABELS = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}


class CommandError(ServiceError):
    """A kubectl or helm command failed; the message holds its stderr."""

    def __init__(self, argv: Sequence[str], stderr: str) -> None:
        super().__init__(f"{' '.join(argv[:6])} ...: {stderr.strip()[-2000:]}")
        self.stderr = stderr


@dataclass(frozen=True)
class Result:
    stdout: str
    stderr: str


def _run(argv: list[str], env: dict[str, str], stdin: str | None, timeout_s: float) -> Result:
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, timeout=timeout_s, check=False)
    if result.returncode != 0:
        raise CommandError(argv, result.stderr)
    return Result(result.stdout, result.stderr)


@dataclass(frozen=True)
class Kubectl:
    """Debian's kubectl with one kubeconfig."""

    kubeconfig: Path

    def run(self, *args: str, stdin: str | None = None, timeout_s: float = 60.0) -> Result:
        kubectl = require("kubectl", "apt-get install kubernetes-client")
        # Discovery cache beside the kubeconfig (without HOME kubectl would write ./.kube).
        cache = f"--cache-dir={self.kubeconfig.parent / '.kube-cache'}"
        return _run(
            [kubectl, f"--kubeconfig={self.kubeconfig}", cache, *args],
            {"PATH": "/usr/bin:/bin", "HOME": str(self.kubeconfig.parent)},
            stdin,
            timeout_s,
        )

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def apply(self, manifest: dict[str, Any] | str, *args: str) -> Result:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self.run("apply", "-f", "-", *args, stdin=text)

    def namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        """Create (or relabel) a namespace."""
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}})

    def create_token(self, namespace: str, service_account: str, duration: str = "2h") -> str:
        """A bound token for the ServiceAccount (the TokenRequest API, as the kubelet does for pods)."""
        return self.run("create", "token", service_account, "-n", namespace, f"--duration={duration}").stdout.strip()


def service_account_kubeconfig(
    admin: Kubectl, info: ClusterInfo, namespace: str, service_account: str, path: Path, server: str | None = None
) -> Kubectl:
    """A kubeconfig that authenticates as the ServiceAccount itself, with no admin rights.

    `server`: another address of the same API server (a proxy in front of it); default the API server's own.
    """
    token = admin.create_token(namespace, service_account)
    user = f"system:serviceaccount:{namespace}:{service_account}"
    return Kubectl(write_kubeconfig(path, server or info.server, Path(info.ca_file), user, token, namespace))


@dataclass(frozen=True)
class Helm:
    """helm (built once with `go install`) with one kubeconfig and caches of its own."""

    kubeconfig: Path
    home: Path

    def run(self, *args: str, timeout_s: float = 300.0) -> Result:
        helm = helm_path()
        env = {
            "PATH": "/usr/bin:/bin",
            # helm's discovery cache is $HOME/.kube/cache: without HOME it would land in the working folder.
            "HOME": str(self.home),
            "KUBECACHEDIR": str(self.home / "kube-cache"),
            "KUBECONFIG": str(self.kubeconfig),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        return _run([str(helm), *args], env, None, timeout_s)


def values_args(values: dict[str, Any]) -> list[str]:
    """`--set-json` arguments, one per top-level key (helm merges them over values.yaml)."""
    return [arg for key, value in values.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")]


def chart_without_dependencies(chart: Path, dest: Path) -> Path:
    """A copy of the chart without its `dependencies`, for value sets that disable every one of them.

    helm refuses a chart whose declared dependencies are not in charts/ even when their conditions
    are false, and they cannot be fetched here (no chart repository is reachable).
    """
    import shutil

    import yaml

    target = dest / chart.name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(chart, target, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    metadata = yaml.safe_load((target / "Chart.yaml").read_text())
    metadata.pop("dependencies", None)
    (target / "Chart.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False))
    return target


def start_operator(kubeconfig: Path, namespace: str, configmap: str, log: Path, resync_seconds: float = 60.0) -> int:
    """`stockpipe operator` as a local process, authenticated by `kubeconfig` only; returns its pid."""
    import os
    import sys

    from stockpipe_dev.localservices.process import spawn

    # Only the kubeconfig speaks for it: no STOCKPIPE_* setting of the caller leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKPIPE_") or k.endswith("_DIR")}
    env["KUBECONFIG"] = str(kubeconfig)
    argv = [sys.executable, "-m", "stockpipe.cli", "operator", "--namespace", namespace, "--configmap", configmap,
            "--liveness-port", "0", "--resync-seconds", str(resync_seconds)]  # fmt: skip
    return spawn(argv, log, env=env)


@dataclass(frozen=True)
class OperatorWiring:
    """What the chart gives its operator Deployment: the identity it runs as and the ConfigMap it renders."""

    service_account: str
    configmap: str


def operator_wiring(kubectl: Kubectl, namespace: str) -> OperatorWiring:
    """Read from the installed chart, so a local operator runs exactly as the chart's pod would."""
    deployments = kubectl.json("get", "deployments", "-n", namespace)["items"]
    [operator] = [d for d in deployments if d["metadata"]["name"].endswith("operator")]
    pod = operator["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    return OperatorWiring(str(pod["serviceAccountName"]), str(env["STOCKPIPE_CONFIGMAP_NAME"]))
