"""`stockpipe bench cluster`: the local control plane's start time and watchlist edit -> ConfigMap latency.

Method: start the control plane from cached binaries (timed, `control_plane_start_s`), install the chart
(CRD, the operator's ServiceAccount and Role), run `stockpipe operator` as a local process with a
TokenRequest token of that ServiceAccount, then patch a TickerWatchlist's symbols 20 times (what
`kubectl edit` sends) and time each patch until the API server serves the ConfigMap holding the new
symbols (polled every 10 ms, so each sample is at most 10 ms late).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from stockpipe.localservices.kube.build import CONTROL_PLANE, ensure_binaries
from stockpipe.localservices.kube.controlplane import ClusterInfo, ControlPlane
from stockpipe.localservices.kube.tools import (
    RESTRICTED_LABELS,
    Helm,
    Kubectl,
    chart_without_dependencies,
    operator_service_account,
    service_account_kubeconfig,
    start_operator,
    values_args,
)
from stockpipe.localservices.process import ServiceError, terminate

NAMESPACE = "bench"
WATCHLIST = "bench"
CONFIGMAP = "stockpipe-watchlist"
# The chart's dependencies cannot be fetched here, and no Kafka/S3 is needed to render a ConfigMap.
CHART_VALUES: dict[str, Any] = {
    "airflow": {"enabled": False},
    "kafka": {"external": {"enabled": True, "bootstrapServers": "kafka.example.internal:9092"}},
    "lake": {"mode": "external", "endpoint": "http://s3.example.internal:9000"},
    "watchlist": {"create": False},
}


def _symbols(i: int) -> list[str]:
    # A distinct list per edit, so each edit changes the rendered ConfigMap.
    return ["AAPL", "MSFT", f"Q{chr(65 + i // 26)}{chr(65 + i % 26)}"]


def _rendered(info: ClusterInfo) -> list[str] | None:
    body = json.loads(info.get(f"/api/v1/namespaces/{NAMESPACE}/configmaps/{CONFIGMAP}"))
    text = (body.get("data") or {}).get("watchlist.json")
    return None if text is None else list(json.loads(text)["symbols"])


def _wait_rendered(info: ClusterInfo, symbols: list[str], timeout_s: float = 30.0) -> float:
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        try:
            if _rendered(info) == symbols:
                return time.perf_counter()
        except OSError:  # not created yet (404) or a transient connection error
            pass
        time.sleep(0.01)
    raise ServiceError(f"the ConfigMap did not show {symbols} within {timeout_s:.0f}s")


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_cluster_bench(out: Path, chart: Path = Path("charts/stockpipe"), edits: int = 20) -> dict[str, Any]:
    ensure_binaries(CONTROL_PLANE)  # built before timing: the number is a start from cached binaries
    with tempfile.TemporaryDirectory(prefix="stockpipe-cluster-bench-") as tmp:
        work = Path(tmp)
        plane = ControlPlane(work / "cluster", echo=lambda _: None)
        started = time.perf_counter()
        info = plane.up()
        start_s = time.perf_counter() - started
        pid = None
        try:
            kubectl = Kubectl(Path(info.kubeconfig))
            kubectl.namespace(NAMESPACE, RESTRICTED_LABELS)
            helm = Helm(Path(info.kubeconfig), work / "helm")
            local_chart = chart_without_dependencies(chart, work / "chart")
            helm.run("install", "bench", str(local_chart), "-n", NAMESPACE, *values_args(CHART_VALUES))
            account = operator_service_account(kubectl, NAMESPACE)
            operator = service_account_kubeconfig(kubectl, info, NAMESPACE, account, work / "operator.kubeconfig")
            pid = start_operator(operator.kubeconfig, NAMESPACE, work / "operator.log")
            path = f"/apis/stockpipe.io/v1alpha1/namespaces/{NAMESPACE}/tickerwatchlists"
            manifest = {
                "apiVersion": "stockpipe.io/v1alpha1",
                "kind": "TickerWatchlist",
                "metadata": {"name": WATCHLIST},
                "spec": {"symbols": _symbols(0), "pollIntervalSeconds": 15, "sources": ["quotes"]},
            }
            info.request("POST", path, manifest)
            _wait_rendered(info, _symbols(0), timeout_s=120)  # the operator's start-up is not an edit
            samples = []
            for i in range(1, edits + 1):
                began = time.perf_counter()
                info.request(
                    "PATCH", f"{path}/{WATCHLIST}", {"spec": {"symbols": _symbols(i)}}, "application/merge-patch+json"
                )
                samples.append(_wait_rendered(info, _symbols(i)) - began)
        finally:
            if pid is not None:
                terminate(pid)
            plane.down()
    result = {
        "control_plane_start_s": round(start_s, 2),
        "edits": edits,
        "edit_to_configmap_p50_s": round(statistics.median(samples), 3),
        "edit_to_configmap_p95_s": round(_percentile(samples, 0.95), 3),
        "edit_to_configmap_samples_s": [round(s, 3) for s in samples],
        "method": __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "cluster.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
