"""The real operator (kopf, in a thread) against kmock standing in for the Kubernetes API."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from stockpipe.contracts.watchlist import WATCHLIST_FILE_KEY, Watchlist
from tests.integration.operator.kube_emulator import Kube, KubeError, wait_for
from tests.integration.operator.operator_harness import CM_PATH, NAMESPACE, TW_PATH, RunningOperator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

StartOperator = Callable[[], RunningOperator]


def create(kube: Kube, name: str, symbols: list[str], **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": "stockpipe.io/v1alpha1",
        "kind": "TickerWatchlist",
        "metadata": {"name": name},
        "spec": {"symbols": symbols, **spec},
    }
    created: dict[str, Any] = kube.create(TW_PATH, body)
    return created


def watchlist_in_configmap(kube: Kube) -> Watchlist | None:
    cm = kube.get_or_none(CM_PATH)
    if cm is None or WATCHLIST_FILE_KEY not in (cm.get("data") or {}):
        return None
    return Watchlist.model_validate_json(cm["data"][WATCHLIST_FILE_KEY])


def ready(kube: Kube, name: str) -> dict[str, Any] | None:
    status = kube.get(f"{TW_PATH}/{name}").get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)


def wait_ready(kube: Kube, name: str, status: str, reason: str | None = None) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        condition = ready(kube, name)
        if condition and condition["status"] == status and (reason is None or condition["reason"] == reason):
            return condition
        return None

    found: dict[str, Any] = wait_for(f"{name} Ready={status} {reason or ''}", probe)
    return found


def wait_symbols(kube: Kube, symbols: list[str]) -> Watchlist:
    found: Watchlist = wait_for(
        f"ConfigMap symbols {symbols}",
        lambda: (w := watchlist_in_configmap(kube)) is not None and w.symbols == symbols and w,
    )
    return found


def event_reasons(kube: Kube, name: str) -> list[str]:
    events = kube.get(f"/api/v1/namespaces/{NAMESPACE}/events")["items"]
    return [e["reason"] for e in events if e["involvedObject"]["name"] == name]


def test_create_renders_the_configmap_and_reports_ready(kube: Kube, start_operator: StartOperator) -> None:
    operator = start_operator()
    create(kube, "tech", ["MSFT", "AAPL", "NVDA"], pollIntervalSeconds=30)
    create(kube, "classes", ["BRK.B", "AAPL"], pollIntervalSeconds=10, sources=["quotes", "trades"])
    create(kube, "paused", ["SPY"], pollIntervalSeconds=5, enabled=False)

    watchlist = wait_symbols(kube, ["AAPL", "BRK.B", "MSFT", "NVDA"])
    assert watchlist.poll_interval_seconds == 10  # the smallest of the enabled ones; "paused" does not count
    assert watchlist.sources == ["quotes", "trades"]

    condition = wait_ready(kube, "tech", "True", "Rendered")
    assert "3 symbols in ConfigMap stockpipe-watchlist" in condition["message"]
    assert wait_ready(kube, "paused", "True", "Disabled")
    tech = kube.get(f"{TW_PATH}/tech")
    assert tech["status"]["observedGeneration"] == tech["metadata"]["generation"] == 1
    assert tech["status"]["symbolCount"] == 3
    # No finalizer: at `helm uninstall` the operator goes with its watchlists, and none may stay stuck.
    assert not tech["metadata"].get("finalizers")

    cm = kube.get(CM_PATH)
    owners = {ref["name"]: ref for ref in cm["metadata"]["ownerReferences"]}
    assert set(owners) == {"tech", "classes", "paused"}
    assert owners["tech"]["uid"] == tech["metadata"]["uid"]
    assert (owners["tech"]["apiVersion"], owners["tech"]["kind"]) == ("stockpipe.io/v1alpha1", "TickerWatchlist")
    assert not any(ref["controller"] for ref in owners.values())

    wait_for("events", lambda: {"Rendered"} <= set(event_reasons(kube, "tech")))
    # The liveness endpoint answers, with the operator's own probe (watchlists it knows).
    url = f"http://127.0.0.1:{operator.settings.liveness_port}/healthz"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert json.loads(response.read())["watchlists"] == 3


def test_editing_symbols_updates_the_configmap_and_observed_generation(
    kube: Kube, start_operator: StartOperator
) -> None:
    start_operator()
    create(kube, "tech", ["MSFT", "AAPL"])
    wait_symbols(kube, ["AAPL", "MSFT"])
    before = wait_ready(kube, "tech", "True")

    kube.merge_patch(f"{TW_PATH}/tech", {"spec": {"symbols": ["TSLA", "AAPL", "AMD"], "pollIntervalSeconds": 60}})
    watchlist = wait_symbols(kube, ["AAPL", "AMD", "TSLA"])
    assert watchlist.poll_interval_seconds == 60
    tech = wait_for(
        "observedGeneration 2", lambda: (t := kube.get(f"{TW_PATH}/tech"))["status"]["observedGeneration"] == 2 and t
    )
    assert tech["metadata"]["generation"] == 2
    assert tech["status"]["symbolCount"] == 3
    after = wait_ready(kube, "tech", "True")
    # Still Ready: the condition did not transition, so its time stays.
    assert after["lastTransitionTime"] == before["lastTransitionTime"]


def test_a_configmap_edited_by_hand_is_put_back_by_the_timer(kube: Kube, start_operator: StartOperator) -> None:
    start_operator()
    create(kube, "tech", ["MSFT", "AAPL"])
    wait_symbols(kube, ["AAPL", "MSFT"])
    good = kube.get(CM_PATH)["data"]

    kube.merge_patch(CM_PATH, {"data": {WATCHLIST_FILE_KEY: '{"symbols": ["GME"]}', "extra": "by hand"}})
    assert kube.get(CM_PATH)["data"][WATCHLIST_FILE_KEY] == '{"symbols": ["GME"]}'
    restored = wait_for("restored ConfigMap", lambda: (d := kube.get(CM_PATH)["data"]) == good and d)
    assert "extra" not in restored
    wait_for("a warning event", lambda: "ConfigMapRestored" in event_reasons(kube, "tech"))

    # Deleted by hand: created again.
    kube.delete(CM_PATH)
    wait_for("recreated ConfigMap", lambda: (cm := kube.get_or_none(CM_PATH)) is not None and cm["data"] == good)


def test_a_spec_the_operator_refuses_leaves_the_configmap_untouched(kube: Kube, start_operator: StartOperator) -> None:
    start_operator()
    create(kube, "tech", ["MSFT", "AAPL"])
    wait_symbols(kube, ["AAPL", "MSFT"])
    wait_ready(kube, "tech", "True")
    before = kube.get(CM_PATH)

    # The schema lets it through (both notations match the pattern); the operator does not.
    create(kube, "dual", ["BRK.B", "BRK-B", "TSLA"])
    condition = wait_ready(kube, "dual", "False", "InvalidSpec")
    assert "BRK.B/BRK-B" in condition["message"]
    dual = kube.get(f"{TW_PATH}/dual")
    assert dual["status"]["observedGeneration"] == 1
    # The others say why nothing changes (on their next timer tick).
    assert "dual" in wait_ready(kube, "tech", "False", "Blocked")["message"]
    wait_for("a warning event", lambda: "InvalidSpec" in event_reasons(kube, "dual"))
    after = kube.get(CM_PATH)
    assert after["data"] == before["data"]
    assert after["metadata"]["ownerReferences"] == before["metadata"]["ownerReferences"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    # Fixed: everything flows again.
    kube.merge_patch(f"{TW_PATH}/dual", {"spec": {"symbols": ["BRK.B", "TSLA"]}})
    wait_symbols(kube, ["AAPL", "BRK.B", "MSFT", "TSLA"])
    wait_ready(kube, "dual", "True", "Rendered")
    wait_ready(kube, "tech", "True", "Rendered")


def test_more_than_500_symbols_in_total_leave_the_configmap_untouched(
    kube: Kube, start_operator: StartOperator
) -> None:
    start_operator()
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    first = [a + b + c for a in "AB" for b in letters for c in letters][:300]
    second = [a + b + c for a in "CD" for b in letters for c in letters][:300]
    create(kube, "first", first)
    wait_symbols(kube, sorted(first))
    before = kube.get(CM_PATH)

    create(kube, "second", second)
    assert "600 distinct symbols" in wait_ready(kube, "second", "False", "TooManySymbols")["message"]
    assert kube.get(CM_PATH)["data"] == before["data"]


def test_bad_input_is_refused_at_admission(kube: Kube) -> None:
    # The API server's job (emulated from the CRD schema), before any operator sees it.
    with pytest.raises(KubeError) as refused:
        create(kube, "bad", ["aapl"], pollIntervalSeconds=4)
    assert refused.value.status == 422
    assert "does not match" in refused.value.body["message"]
    assert "less than the minimum" in refused.value.body["message"]
    assert kube.get_or_none(f"{TW_PATH}/bad") is None


def test_deleting_watchlists_shrinks_then_empties_the_configmap(kube: Kube, start_operator: StartOperator) -> None:
    start_operator()
    create(kube, "tech", ["MSFT", "AAPL"])
    create(kube, "energy", ["XOM", "CVX"])
    wait_symbols(kube, ["AAPL", "CVX", "MSFT", "XOM"])

    kube.delete(f"{TW_PATH}/energy")
    wait_symbols(kube, ["AAPL", "MSFT"])
    wait_for("energy gone", lambda: kube.get_or_none(f"{TW_PATH}/energy") is None)
    assert [ref["name"] for ref in kube.get(CM_PATH)["metadata"]["ownerReferences"]] == ["tech"]

    kube.delete(f"{TW_PATH}/tech")
    # The last one leaves an explicit empty watchlist, owned by nobody, so the producer idles.
    watchlist = wait_symbols(kube, [])
    assert watchlist.active_symbols == []
    wait_for("tech gone", lambda: kube.get_or_none(f"{TW_PATH}/tech") is None)
    assert "ownerReferences" not in kube.get(CM_PATH)["metadata"]


def test_changes_made_while_the_operator_was_down_are_picked_up_on_resume(
    kube: Kube, start_operator: StartOperator
) -> None:
    first = start_operator()
    create(kube, "tech", ["MSFT", "AAPL"])
    wait_symbols(kube, ["AAPL", "MSFT"])
    first.shutdown()

    kube.merge_patch(f"{TW_PATH}/tech", {"spec": {"symbols": ["MSFT"]}})
    create(kube, "energy", ["XOM"])
    start_operator()
    wait_symbols(kube, ["MSFT", "XOM"])
    wait_ready(kube, "energy", "True", "Rendered")
    assert wait_for("generation 2 observed", lambda: kube.get(f"{TW_PATH}/tech")["status"]["observedGeneration"] == 2)
