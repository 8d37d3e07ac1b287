"""Chaos for the TickerWatchlist operator on the local control plane: the watchlist's last state always wins.

The chart is installed (CRD, the operator's ServiceAccount and Role) and `stockpipe operator` runs as a
local process with a token of that ServiceAccount, reaching the API server only through toxiproxy, with
a 5 s resync. Each round edits the watchlist (what `kubectl edit` sends, as an admin, never through the
proxy) around one fault:
  watch       the operator's link is down (proxy disabled: every connection, its watches too, closed and
              new ones refused) while the watchlist is edited, then up again;
  apiserver   kube-apiserver restarted (etcd keeps the state) right after an edit, and edited again once
              it answers;
  configmap   a conflicting hand write to the ConfigMap, then an edit;
  burst       ten edits as fast as the API server takes them.
After each fault the ConfigMap must settle, within 60 s, on exactly the last edit's symbols. An edit
whose ConfigMap never settles on its state (or on a later one) is lost.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from stockpipe_dev.bench.chaos_common import Scenario
from stockpipe_dev.bench.cluster import CHART_VALUES, edit_symbols
from stockpipe_dev.localservices.imagebuild import repo_root
from stockpipe_dev.localservices.kube.controlplane import ControlPlane
from stockpipe_dev.localservices.kube.tools import (
    RESTRICTED_LABELS,
    CommandError,
    Helm,
    Kubectl,
    chart_without_dependencies,
    operator_wiring,
    service_account_kubeconfig,
    start_operator,
    values_args,
)
from stockpipe_dev.localservices.process import ServiceError, free_port, terminate
from stockpipe_dev.localservices.toxiproxy import Toxiproxy

NAMESPACE = "operator-chaos"
WATCHLIST = "chaos"
FAULTS = ("watch", "apiserver", "configmap", "burst")
SETTLE_S = 60.0


class _Edits:
    """Edits of the watchlist, each a distinct symbol list, and what the ConfigMap renders."""

    def __init__(self, kubectl: Kubectl, configmap: str) -> None:
        self.kubectl = kubectl
        self.configmap = configmap
        self.count = 0
        self.last: list[str] = []

    def edit(self) -> list[str]:
        self.count += 1
        symbols = edit_symbols(self.count)
        if self.count == 1:
            self.kubectl.apply({
                "apiVersion": "stockpipe.io/v1alpha1",
                "kind": "TickerWatchlist",
                "metadata": {"name": WATCHLIST, "namespace": NAMESPACE},
                "spec": {"symbols": symbols, "pollIntervalSeconds": 15, "sources": ["quotes"]},
            })  # fmt: skip
        else:
            self.kubectl.run("patch", "tw", WATCHLIST, "-n", NAMESPACE, "--type=merge",
                             "-p", json.dumps({"spec": {"symbols": symbols}}))  # fmt: skip
        self.last = symbols
        return symbols

    def rendered(self) -> list[str] | None:
        try:
            configmap = self.kubectl.json("get", "configmap", self.configmap, "-n", NAMESPACE)
        except CommandError:  # not there yet, or the API server is restarting
            return None
        text = (configmap.get("data") or {}).get("watchlist.json")
        try:
            return None if text is None else list(json.loads(text)["symbols"])
        except (ValueError, KeyError, TypeError):  # a hand write may leave anything there
            return None

    def settle(self) -> float | None:
        """Seconds until the ConfigMap shows the last edit; None when it does not within SETTLE_S."""
        began = time.monotonic()
        while time.monotonic() - began < SETTLE_S:
            if self.rendered() == self.last:
                return time.monotonic() - began
            time.sleep(0.2)
        return None


def _wait_api(kubectl: Kubectl, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            kubectl.run("get", "--raw", "/readyz", timeout_s=10)
            return
        except CommandError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _fault_round(
    fault: str, edits: _Edits, plane: ControlPlane, toxi: Toxiproxy, rng: random.Random
) -> tuple[int, float | None]:
    """One fault with edits around it; (edits made, seconds to settle on the last or None)."""
    before = edits.count
    if fault == "watch":
        toxi.set_enabled("apiserver", False)
        try:
            time.sleep(rng.uniform(0.5, 2.0))
            edits.edit()
            time.sleep(rng.uniform(2.0, 6.0))
        finally:
            toxi.set_enabled("apiserver", True)
    elif fault == "apiserver":
        edits.edit()
        plane.restart_apiserver()  # the edit's event may or may not have reached the operator
        _wait_api(edits.kubectl)
        if edits.settle() is None:
            return edits.count - before, None
        edits.edit()
    elif fault == "configmap":
        bogus = json.dumps({"symbols": ["HAND", "EDIT"]})
        edits.kubectl.run("patch", "configmap", edits.configmap, "-n", NAMESPACE, "--type=merge",
                          "-p", json.dumps({"data": {"watchlist.json": bogus}}))  # fmt: skip
        if edits.settle() is None:  # the hand write is undone: the watchlist's state wins
            return edits.count - before, None
        edits.edit()
    else:
        for _ in range(10):
            edits.edit()
    return edits.count - before, edits.settle()


def operator_faults(
    plane: ControlPlane, work: Path, rounds: int, rng: random.Random, echo: Callable[[str], None] = print
) -> Scenario:
    """`rounds` rounds of the four faults on a running control plane; every edit counted."""
    info = plane.info()
    if info is None:
        raise ServiceError("the control plane is not running")
    kubectl = Kubectl(Path(info.kubeconfig))
    kubectl.namespace(NAMESPACE, RESTRICTED_LABELS)
    helm = Helm(Path(info.kubeconfig), work / "helm")
    chart = chart_without_dependencies(repo_root() / "charts" / "stockpipe", work / "chart")
    helm.run("install", "chaos", str(chart), "-n", NAMESPACE, *values_args(CHART_VALUES))
    toxi = Toxiproxy(work / "toxiproxy-apiserver", free_port())
    toxi_record = toxi.start()
    pid = None
    settled: list[float] = []
    lost = 0
    wiring = operator_wiring(kubectl, NAMESPACE)
    edits = _Edits(kubectl, wiring.configmap)
    try:
        api = urlparse(info.server)
        proxied = toxi.proxy("apiserver", free_port(), f"{api.hostname}:{api.port}")
        operator = service_account_kubeconfig(kubectl, info, NAMESPACE, wiring.service_account,
                                              work / "operator.kubeconfig", server=f"https://{proxied}")  # fmt: skip
        log = work / "operator.log"
        pid = start_operator(operator.kubeconfig, NAMESPACE, wiring.configmap, log, resync_seconds=5)
        edits.edit()
        if edits.settle() is None:
            raise ServiceError(f"the operator never rendered the first edit; see {log}")
        for i in range(rounds * len(FAULTS)):
            fault = FAULTS[i % len(FAULTS)]
            made, seconds = _fault_round(fault, edits, plane, toxi, rng)
            echo(f"{fault}: {made} edits, " + ("lost" if seconds is None else f"settled in {seconds:.1f} s"))
            if seconds is None:
                lost += made
            else:
                settled.append(seconds)
    finally:
        if pid is not None:
            terminate(pid)
        Toxiproxy.stop(toxi_record)
        try:
            helm.run("uninstall", "chaos", "-n", NAMESPACE, "--wait", timeout_s=120)
            kubectl.run("delete", "namespace", NAMESPACE, "--wait=false")
        except CommandError as exc:
            echo(f"cleanup: {exc}")
    slowest = max(settled, default=0.0)
    return Scenario(
        name="operator",
        produced=edits.count,
        in_lake=edits.count - lost,
        lost=lost,
        duplicated=0,
        detail=(
            f"{rounds} rounds of {', '.join(FAULTS)} (the operator's link down through toxiproxy, kube-apiserver "
            f"restarted, a hand write to the ConfigMap, 10 edits in a burst); {edits.count} watchlist edits; the "
            f"ConfigMap settled on the last state after each fault, the slowest in {slowest:.1f} s (resync 5 s)"
        ),
    )
