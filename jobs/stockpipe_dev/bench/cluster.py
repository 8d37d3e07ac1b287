"""`stockpipe bench cluster`: the local control plane's start time and watchlist edit -> ConfigMap latency.

Method: start the control plane from cached binaries (timed, `control_plane_start_s`), install the chart
(CRD, the operator's ServiceAccount and Role), run `stockpipe operator` as a local process with a
TokenRequest token of that ServiceAccount, then patch a TickerWatchlist's symbols 20 times (what
`kubectl edit` sends) and time each patch until the API server serves the ConfigMap holding the new
symbols (polled every 10 ms, so each sample is at most 10 ms late).

With root and a node (`cluster up --with-node`'s parts installed), also edit -> stream: the chart runs on
the local node (ci/local-node-values.yaml: the producer pod replays a session at real-time speed, polling
each symbol every 5 s), the TickerWatchlist is patched 10 times with a new symbol each, and each edit is
timed until that symbol's first quote is on the quotes topic. The pace is the kubelet's: a ConfigMap
volume is refreshed on its sync (`syncFrequency: 10s` here, 60 s by default) after the watch saw the
change; the producer re-reads the file on each polling round.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from stockpipe_dev.localservices.kube.build import CONTROL_PLANE, ensure_binaries
from stockpipe_dev.localservices.kube.controlplane import ControlPlane
from stockpipe_dev.localservices.kube.layout import ClusterInfo
from stockpipe_dev.localservices.kube.tools import (
    RESTRICTED_LABELS,
    Helm,
    Kubectl,
    chart_without_dependencies,
    operator_wiring,
    service_account_kubeconfig,
    start_operator,
    values_args,
)
from stockpipe_dev.localservices.process import ServiceError, terminate

NAMESPACE = "bench"
WATCHLIST = "bench"
# The chart's dependencies cannot be fetched here, and no Kafka/S3 is needed to render a ConfigMap.
CHART_VALUES: dict[str, Any] = {
    "airflow": {"enabled": False},
    "kafka": {"external": {"enabled": True, "bootstrapServers": "kafka.example.internal:9092"}},
    "lake": {"mode": "external", "endpoint": "http://s3.example.internal:9000"},
    "watchlist": {"create": False},
}


def edit_symbols(i: int) -> list[str]:
    # A distinct list per edit, so each edit changes the rendered ConfigMap.
    return ["AAPL", "MSFT", f"Q{chr(65 + i // 26)}{chr(65 + i % 26)}"]


def _rendered(info: ClusterInfo, configmap: str) -> list[str] | None:
    body = json.loads(info.get(f"/api/v1/namespaces/{NAMESPACE}/configmaps/{configmap}"))
    text = (body.get("data") or {}).get("watchlist.json")
    return None if text is None else list(json.loads(text)["symbols"])


def _wait_rendered(info: ClusterInfo, configmap: str, symbols: list[str], timeout_s: float = 30.0) -> float:
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        try:
            if _rendered(info, configmap) == symbols:
                return time.perf_counter()
        except OSError:  # not created yet (404) or a transient connection error
            pass
        time.sleep(0.01)
    raise ServiceError(f"the ConfigMap did not show {symbols} within {timeout_s:.0f}s")


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _is_symbol(symbol: str, message: dict[str, Any]) -> bool:
    return message.get("symbol") == symbol


def _edit_to_stream(edits: int) -> dict[str, Any]:
    """Watchlist edit -> the new symbol's first quote on the topic, through the producer pod on the local node."""
    from stockpipe_dev.localservices.kube.deploy import TopicReader, deployed_on_node
    from stockpipe_dev.localservices.kube.node import missing_for_node

    if edits <= 0:
        return {}
    if missing := missing_for_node("dockerd"):
        return {"edit_to_stream_skipped": f"the node needs {', '.join(missing)}"}
    with tempfile.TemporaryDirectory(prefix="stockpipe-node-bench-") as tmp, deployed_on_node(Path(tmp)) as node:
        reader = TopicReader(node.broker.bootstrap, node.values["kafka"]["topics"]["quotes"]["name"])
        samples = []
        try:
            for i in range(1, edits + 1):
                symbols = edit_symbols(i)
                start = reader.end_offsets()
                began = time.perf_counter()
                node.kubectl.run("patch", "tickerwatchlist", node.values["watchlist"]["name"], "-n", node.namespace,
                                 "--type", "merge", "-p", json.dumps({"spec": {"symbols": symbols}}))  # fmt: skip
                new = symbols[-1]
                reader.messages(start, until=partial(_is_symbol, new), timeout_s=300)
                samples.append(time.perf_counter() - began)
        finally:
            reader.close()
    return {
        "stream_edits": edits,
        "kubelet_sync_frequency_s": 10,
        "edit_to_stream_p50_s": round(statistics.median(samples), 2),
        "edit_to_stream_p95_s": round(_percentile(samples, 0.95), 2),
        "edit_to_stream_samples_s": [round(s, 2) for s in samples],
    }


def run_cluster_bench(
    out: Path, chart: Path = Path("charts/stockpipe"), edits: int = 20, stream_edits: int = 10
) -> dict[str, Any]:
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
            wiring = operator_wiring(kubectl, NAMESPACE)
            operator = service_account_kubeconfig(kubectl, info, NAMESPACE, wiring.service_account,
                                                  work / "operator.kubeconfig")  # fmt: skip
            pid = start_operator(operator.kubeconfig, NAMESPACE, wiring.configmap, work / "operator.log")
            path = f"/apis/stockpipe.io/v1alpha1/namespaces/{NAMESPACE}/tickerwatchlists"
            manifest = {
                "apiVersion": "stockpipe.io/v1alpha1",
                "kind": "TickerWatchlist",
                "metadata": {"name": WATCHLIST},
                "spec": {"symbols": edit_symbols(0), "pollIntervalSeconds": 15, "sources": ["quotes"]},
            }
            info.request("POST", path, manifest)
            # The operator's start-up is not an edit.
            _wait_rendered(info, wiring.configmap, edit_symbols(0), timeout_s=120)
            samples = []
            for i in range(1, edits + 1):
                began = time.perf_counter()
                info.request(
                    "PATCH",
                    f"{path}/{WATCHLIST}",
                    {"spec": {"symbols": edit_symbols(i)}},
                    "application/merge-patch+json",
                )
                samples.append(_wait_rendered(info, wiring.configmap, edit_symbols(i)) - began)
        finally:
            if pid is not None:
                terminate(pid)
            plane.down()
    result: dict[str, Any] = {
        "control_plane_start_s": round(start_s, 2),
        "edits": edits,
        "edit_to_configmap_p50_s": round(statistics.median(samples), 3),
        "edit_to_configmap_p95_s": round(_percentile(samples, 0.95), 3),
        "edit_to_configmap_samples_s": [round(s, 3) for s in samples],
        "method": __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
    }
    result.update(_edit_to_stream(stream_edits))
    out.mkdir(parents=True, exist_ok=True)
    (out / "cluster.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
