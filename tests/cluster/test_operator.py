"""The TickerWatchlist operator against the real API server, with its own ServiceAccount's token.

The chart is installed (CRD, ServiceAccount, Role, RoleBinding); the operator runs as a local process
(`stockpipe operator`) whose kubeconfig holds a TokenRequest token of the chart's operator
ServiceAccount, so every request it makes is authorized by the chart's Role, not by an admin.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stockpipe_dev.localservices.kube.layout import ClusterInfo
from stockpipe_dev.localservices.kube.tools import (
    RESTRICTED_LABELS,
    CommandError,
    Helm,
    Kubectl,
    operator_wiring,
    service_account_kubeconfig,
    start_operator,
    values_args,
)
from stockpipe_dev.localservices.process import terminate
from tests.cluster.conftest import OFFLINE_VALUES, REPO

NAMESPACE = "operator-rbac"
CONFIGMAP = "op-stockpipe-watchlist"  # the chart names it after the release
EXAMPLE = REPO / "charts" / "stockpipe" / "examples" / "tech-megacaps.yaml"


def wait_for(check: Any, what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            last = check()
            if last:
                return last
        except CommandError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {last}")
        time.sleep(0.2)


def rendered_symbols(kubectl: Kubectl) -> list[str] | None:
    configmap = kubectl.json("get", "configmap", CONFIGMAP, "-n", NAMESPACE)
    text = (configmap.get("data") or {}).get("watchlist.json")
    return None if text is None else list(json.loads(text)["symbols"])


@pytest.fixture(scope="module")
def operator_kubectl(
    kubectl: Kubectl, helm: Helm, chart: Path, cluster: ClusterInfo, tmp_path_factory: pytest.TempPathFactory
) -> Kubectl:
    kubectl.namespace(NAMESPACE, RESTRICTED_LABELS)
    values = {**OFFLINE_VALUES, "watchlist": {"create": False}}
    helm.run("install", "op", str(chart), "-n", NAMESPACE, *values_args(values))
    wiring = operator_wiring(kubectl, NAMESPACE)
    assert wiring.configmap == CONFIGMAP
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    return service_account_kubeconfig(kubectl, cluster, NAMESPACE, wiring.service_account, path)


@pytest.fixture(scope="module")
def running_operator(operator_kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    log = tmp_path_factory.mktemp("operator-log") / "operator.log"
    pid = start_operator(operator_kubectl.kubeconfig, NAMESPACE, CONFIGMAP, log, resync_seconds=5)
    yield log
    terminate(pid)


def test_apply_patch_and_delete_a_watchlist(running_operator: Path, kubectl: Kubectl) -> None:
    kubectl.run("apply", "-n", NAMESPACE, "-f", str(EXAMPLE))
    # The ConfigMap holds the union of the enabled lists' symbols, sorted.
    symbols = sorted(["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA"])
    wait_for(lambda: rendered_symbols(kubectl) == symbols or rendered_symbols(kubectl), "the ConfigMap", 60)
    assert rendered_symbols(kubectl) == symbols

    # What `kubectl edit` sends: a patch of the spec.
    patch = {"spec": {"symbols": ["AAPL", "BRK.B", "XOM"], "pollIntervalSeconds": 30}}
    kubectl.run("patch", "tw", "tech-megacaps", "-n", NAMESPACE, "--type=merge", "-p", json.dumps(patch))
    wait_for(lambda: rendered_symbols(kubectl) == ["AAPL", "BRK.B", "XOM"], "the patched ConfigMap")

    def ready() -> dict[str, Any] | None:
        tw = kubectl.json("get", "tw", "tech-megacaps", "-n", NAMESPACE)
        status = tw.get("status", {})
        fresh = status.get("observedGeneration") == tw["metadata"]["generation"] and status.get("symbolCount") == 3
        return status if fresh else None

    status = wait_for(ready, "the status of generation 2")
    [condition] = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert condition["status"] == "True"
    table = kubectl.run("get", "tw", "tech-megacaps", "-n", NAMESPACE, "-o", "wide").stdout.split("\n")
    assert table[0].split() == ["NAME", "SYMBOLS", "READY", "REASON", "INTERVAL", "AGE"]
    assert table[1].split()[:5] == ["tech-megacaps", "3", "True", condition["reason"], "30"]

    # README: deleting the last watchlist leaves an empty list, so the producer idles.
    kubectl.run("delete", "tw", "tech-megacaps", "-n", NAMESPACE, "--timeout=30s")
    wait_for(lambda: rendered_symbols(kubectl) == [], "the emptied ConfigMap")


def test_deleting_the_last_watchlist_leaves_an_empty_list_every_time(running_operator: Path, kubectl: Kubectl) -> None:
    # The garbage collector deletes the ConfigMap when its last owner goes, racing the operator's write of
    # the empty list (CI once lost that race), and a deleted watchlist's resync timer must not write its
    # list back: every round must end, and stay past a resync, with the empty list.
    for round_ in range(3):
        symbols = ["AAPL", f"R{chr(65 + round_)}"]
        body = {"apiVersion": "stockpipe.io/v1alpha1", "kind": "TickerWatchlist",
                "metadata": {"name": "last-one"}, "spec": {"symbols": symbols}}  # fmt: skip
        kubectl.run("apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps(body))
        wait_for(lambda want=symbols: rendered_symbols(kubectl) == want, f"round {round_}'s list", 60)
        kubectl.run("delete", "tw", "last-one", "-n", NAMESPACE, "--timeout=30s")
        wait_for(lambda: rendered_symbols(kubectl) == [], f"round {round_}'s emptied ConfigMap")
        time.sleep(6)  # past the operator's wait for the garbage collector and a resync (5 s here)
        assert rendered_symbols(kubectl) == [], f"round {round_}: the empty list did not stay"


def test_actions_outside_the_operators_role_are_refused(operator_kubectl: Kubectl) -> None:
    assert operator_kubectl.run("auth", "whoami", "-o", "json").stdout.count("system:serviceaccount:") == 1
    with pytest.raises(CommandError, match=r"(?i)forbidden"):
        operator_kubectl.run("get", "secrets", "-n", NAMESPACE)
    with pytest.raises(CommandError, match="forbidden"):
        operator_kubectl.run("patch", "configmap", "kube-root-ca.crt", "-n", NAMESPACE, "--type=merge",
                             "-p", '{"data": {"x": "y"}}')  # fmt: skip
    with pytest.raises(CommandError, match="forbidden"):
        operator_kubectl.run("delete", "configmap", CONFIGMAP, "-n", NAMESPACE)
    with pytest.raises(CommandError, match="forbidden"):
        operator_kubectl.run("get", "tw", "-n", "default")


BAD_WATCHLISTS = {
    "lower-case symbol": {"symbols": ["aapl"]},
    "duplicate symbols": {"symbols": ["AAPL", "AAPL"]},
    "no symbols": {"symbols": []},
    "poll too fast": {"symbols": ["AAPL"], "pollIntervalSeconds": 1},
    "poll too slow": {"symbols": ["AAPL"], "pollIntervalSeconds": 7200},
    "unknown source": {"symbols": ["AAPL"], "sources": ["news"]},
    "too many symbols": {"symbols": [f"S{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(501)]},
    "unknown field": {"symbols": ["AAPL"], "intervalSeconds": 5},
}


@pytest.mark.parametrize("case", sorted(BAD_WATCHLISTS))
def test_the_api_server_refuses_a_bad_watchlist(case: str, operator_kubectl: Kubectl, kubectl: Kubectl) -> None:
    manifest = {
        "apiVersion": "stockpipe.io/v1alpha1",
        "kind": "TickerWatchlist",
        "metadata": {"name": "bad", "namespace": NAMESPACE},
        "spec": BAD_WATCHLISTS[case],
    }
    with pytest.raises(CommandError, match=r"(?i)invalid|unknown field|strict decoding") as refused:
        kubectl.apply(manifest, "--validate=strict")
    assert "spec." in refused.value.stderr
