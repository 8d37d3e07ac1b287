"""The reconcile rules: watchlists -> the producer's ConfigMap and each watchlist's Ready condition."""

from __future__ import annotations

import itertools
import json
import string
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stockpipe.contracts.watchlist import MAX_SYMBOLS, WATCHLIST_FILE_KEY, Watchlist
from stockpipe.operator import reconcile
from stockpipe.operator.reconcile import Reason, SpecError, WatchlistObject

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

NS = "stocks"
CM = "stockpipe-watchlist"
NOW = datetime(2026, 3, 2, 15, 30, 5, 123456, tzinfo=UTC)


def tickers(count: int, prefix: str = "") -> list[str]:
    """`count` distinct valid symbols (letters only), e.g. AAA, AAB, ..."""
    letters = string.ascii_uppercase
    return [prefix + "".join(t) for t in itertools.islice(itertools.product(letters, repeat=3), count)]


def wl(name: str, symbols: list[str] | None = None, **spec: Any) -> WatchlistObject:
    body: dict[str, Any] = {"symbols": symbols if symbols is not None else ["AAPL"], **spec}
    return WatchlistObject(name=name, namespace=NS, uid=f"uid-{name}", generation=1, spec=body)


def plan(*watchlists: WatchlistObject) -> reconcile.Plan:
    return reconcile.plan(watchlists, namespace=NS, configmap_name=CM)


def configmap(p: reconcile.Plan) -> dict[str, Any]:
    assert p.configmap is not None, p.verdicts
    return p.configmap


def rendered(p: reconcile.Plan) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(configmap(p)["data"][WATCHLIST_FILE_KEY])
    return data


def owners(p: reconcile.Plan) -> list[str]:
    return [ref["name"] for ref in configmap(p)["metadata"]["ownerReferences"]]


def test_union_is_sorted_deduplicated_and_each_symbol_keeps_its_own_lists_options() -> None:
    p = plan(
        wl("tech", ["MSFT", "AAPL", "NVDA"], pollIntervalSeconds=30, sources=["quotes"]),
        wl("mixed", ["BRK.B", "AAPL"], pollIntervalSeconds=10, sources=["trades"]),
    )
    assert rendered(p) == {
        "enabled": True,
        "pollIntervalSeconds": 10,
        "sources": ["quotes", "trades"],
        "symbols": ["AAPL", "BRK.B", "MSFT", "NVDA"],
        "symbolOptions": {
            # In both lists: the faster interval and both lists' sources.
            "AAPL": {"pollIntervalSeconds": 10, "sources": ["quotes", "trades"]},
            # Only in the trades-only list: no REST polling although another list asks for quotes.
            "BRK.B": {"pollIntervalSeconds": 10, "sources": ["trades"]},
            "MSFT": {"pollIntervalSeconds": 30, "sources": ["quotes"]},
            "NVDA": {"pollIntervalSeconds": 30, "sources": ["quotes"]},
        },
    }
    # The producer's own contract reads it back, per symbol.
    streamed = Watchlist.model_validate(rendered(p))
    assert streamed.symbols_for("quotes") == ["AAPL", "MSFT", "NVDA"]
    assert streamed.symbols_for("trades") == ["AAPL", "BRK.B"]
    assert streamed.options_for("MSFT").poll_interval_seconds == 30
    assert p.verdicts["tech"] == reconcile.Verdict(True, Reason.RENDERED, p.verdicts["tech"].message, 3)
    assert p.verdicts["tech"].message == "3 symbols in ConfigMap stockpipe-watchlist (4 from 2 enabled watchlists)"


def test_a_share_class_spelled_two_ways_across_lists_is_streamed_once_and_the_later_list_says_so() -> None:
    early = WatchlistObject("holdings", NS, "uid-h", 1, {"symbols": ["BRK.B", "AAPL"]}, created="2026-03-01T10:00:00Z")
    # Named first alphabetically, created later: age, not the name, decides.
    late = WatchlistObject(
        "berkshire",
        NS,
        "uid-b",
        1,
        {"symbols": ["BRK-B", "BF-B"], "sources": ["trades"]},
        created="2026-03-02T09:00:00Z",
    )
    p = plan(late, early)
    data = rendered(p)
    assert data["symbols"] == ["AAPL", "BF-B", "BRK.B"]
    # BRK.B keeps the earlier list's spelling and takes the later list's sources too: no symbol is lost.
    assert data["symbolOptions"]["BRK.B"] == {"pollIntervalSeconds": 15, "sources": ["quotes", "trades"]}
    assert p.verdicts["holdings"].ready
    verdict = p.verdicts["berkshire"]
    assert (verdict.ready, verdict.reason) == (False, Reason.SHARE_CLASS_CONFLICT)
    assert "BRK-B as BRK.B" in verdict.message


def test_the_operator_derives_symbol_options_a_watchlist_cannot_set_them() -> None:
    with pytest.raises(SpecError, match="symbolOptions"):
        reconcile.parse_spec({"symbols": ["AAPL"], "symbolOptions": {"AAPL": {"pollIntervalSeconds": 5}}})


def test_rendering_does_not_depend_on_the_order_of_watchlists() -> None:
    a = wl("a", ["MSFT", "AAPL"], pollIntervalSeconds=20)
    b = wl("b", ["TSLA", "AAPL"], sources=["trades", "quotes"])
    assert plan(a, b).configmap == plan(b, a).configmap


def test_disabled_watchlists_add_nothing_but_stay_ready_and_owners() -> None:
    p = plan(wl("on", ["AAPL"], pollIntervalSeconds=60), wl("off", ["TSLA"], pollIntervalSeconds=5, enabled=False))
    assert rendered(p)["symbols"] == ["AAPL"]
    assert rendered(p)["pollIntervalSeconds"] == 60  # the disabled one's 5 s does not count
    assert (p.verdicts["off"].ready, p.verdicts["off"].reason) == (True, Reason.DISABLED)
    assert owners(p) == ["off", "on"]


def test_defaults_match_the_contract_when_the_spec_leaves_them_out() -> None:
    data = rendered(plan(wl("minimal", ["SPY"])))
    assert data == {
        "enabled": True,
        "pollIntervalSeconds": 15,
        "sources": ["quotes"],
        "symbols": ["SPY"],
        "symbolOptions": {"SPY": {"pollIntervalSeconds": 15, "sources": ["quotes"]}},
    }


@pytest.mark.parametrize(
    "watchlists",
    [pytest.param([], id="no-watchlists"), pytest.param([wl("off", ["AAPL"], enabled=False)], id="all-disabled")],
)
def test_nothing_enabled_renders_an_explicit_empty_watchlist(watchlists: list[WatchlistObject]) -> None:
    data = rendered(plan(*watchlists))
    assert data["symbols"] == []
    assert Watchlist.model_validate(data).active_symbols == []


def test_configmap_body_has_labels_and_one_non_controller_owner_reference_per_watchlist() -> None:
    body = configmap(plan(wl("b"), wl("a")))
    meta = body["metadata"]
    assert (body["apiVersion"], body["kind"], meta["name"], meta["namespace"]) == ("v1", "ConfigMap", CM, NS)
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "stockpipe-operator"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "stockpipe.io/v1alpha1",
            "kind": "TickerWatchlist",
            "name": name,
            "uid": f"uid-{name}",
            "controller": False,
            "blockOwnerDeletion": False,
        }
        for name in ("a", "b")
    ]
    assert list(body["data"]) == [WATCHLIST_FILE_KEY]


def test_terminating_and_foreign_watchlists_are_left_out() -> None:
    leaving = WatchlistObject("leaving", NS, "uid-l", 3, {"symbols": ["TSLA"]}, terminating=True)
    foreign = WatchlistObject("elsewhere", "other", "uid-e", 1, {"symbols": ["IBM"]})
    p = plan(wl("stays", ["AAPL"]), leaving, foreign)
    assert rendered(p)["symbols"] == ["AAPL"]
    assert set(p.verdicts) == {"stays"}
    assert owners(p) == ["stays"]


def test_last_watchlist_leaving_writes_empty_list_and_drops_all_owners() -> None:
    leaving = WatchlistObject("last", NS, "uid-last", 1, {"symbols": ["TSLA"]}, terminating=True)
    p = plan(leaving)
    assert rendered(p)["symbols"] == []
    assert owners(p) == []
    current = {"metadata": {"ownerReferences": [reconcile.owner_reference(leaving)]}, "data": {}}
    # null in a merge patch removes the field: no owner left, so garbage collection keeps the ConfigMap.
    patch = reconcile.configmap_patch(current, configmap(p))
    assert patch is not None
    assert patch["metadata"]["ownerReferences"] is None


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"symbols": ["BRK.B", "BRK-B"]}, "one share class written two ways: BRK.B/BRK-B"),
        ({"symbols": ["aapl"]}, "not US ticker symbols"),
        ({"symbols": []}, "at least one symbol"),
        ({"symbols": ["AAPL", "AAPL"]}, "unique"),
        ({"symbols": ["AAPL"], "pollIntervalSeconds": 4}, "pollIntervalSeconds"),
        ({"symbols": ["AAPL"], "sources": ["news"]}, "sources"),
        ({"symbols": ["AAPL"], "sources": []}, "sources"),
        ({"symbols": ["AAPL"], "colour": "red"}, "colour"),
        ({"symbols": tickers(MAX_SYMBOLS + 1)}, "symbols"),
    ],
)
def test_specs_the_operator_refuses(spec: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SpecError, match=None) as caught:
        reconcile.parse_spec(spec)
    assert fragment in str(caught.value)


def test_an_invalid_spec_blocks_the_configmap_and_says_why() -> None:
    p = plan(wl("good", ["AAPL"]), wl("bad", ["BRK.B", "BRK-B", "MSFT"]))
    assert p.configmap is None  # left as it is: the producer keeps streaming its last good list
    assert p.verdicts["bad"] == reconcile.Verdict(
        False, Reason.INVALID_SPEC, "symbols: one share class written two ways: BRK.B/BRK-B", 3
    )
    assert not p.verdicts["good"].ready
    assert p.verdicts["good"].reason == Reason.BLOCKED
    assert "bad" in p.verdicts["good"].message


def test_more_than_max_symbols_in_the_union_blocks_the_configmap() -> None:
    half = MAX_SYMBOLS // 2 + 1
    first = tickers(half, prefix="A")
    second = tickers(half, prefix="B")
    p = plan(wl("first", first), wl("second", second), wl("off", ["AAPL"], enabled=False))
    assert p.configmap is None
    assert {n: v.reason for n, v in p.verdicts.items()} == {
        "first": Reason.TOO_MANY_SYMBOLS,
        "second": Reason.TOO_MANY_SYMBOLS,
        "off": Reason.BLOCKED,
    }
    assert f"add up to {2 * half} distinct symbols, at most {MAX_SYMBOLS}" in p.verdicts["first"].message


def test_exactly_max_symbols_fit() -> None:
    symbols = tickers(MAX_SYMBOLS)
    p = plan(wl("one", symbols[:300]), wl("two", symbols[200:]))
    assert len(rendered(p)["symbols"]) == MAX_SYMBOLS


def test_from_body_copies_what_reconcile_needs() -> None:
    body = {
        "metadata": {
            "name": "x",
            "namespace": NS,
            "uid": "u1",
            "generation": 4,
            "deletionTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"symbols": ["AAPL"], "sources": ["quotes"]},
    }
    item = WatchlistObject.from_body(body)
    body["spec"]["symbols"].append("MSFT")  # a later change of the source does not leak into the copy
    assert item == WatchlistObject("x", NS, "u1", 4, {"symbols": ["AAPL"], "sources": ["quotes"]}, terminating=True)
    assert WatchlistObject.from_body({"metadata": {"name": "y"}}).spec == {}


# --- ConfigMap patches -------------------------------------------------------------------------


def desired_cm() -> dict[str, Any]:
    return configmap(plan(wl("tech", ["AAPL"])))


def test_no_patch_when_the_configmap_is_as_desired() -> None:
    current = desired_cm()
    current["metadata"].update(resourceVersion="7", uid="cm-uid", annotations={"note": "mine"})
    current["metadata"]["labels"]["team"] = "quant"
    assert reconcile.configmap_patch(current, desired_cm()) is None


def test_patch_puts_back_hand_edited_data_and_removes_added_keys() -> None:
    current = desired_cm()
    current["data"] = {WATCHLIST_FILE_KEY: '{"symbols": ["GME"]}', "notes.txt": "added by hand"}
    current["binaryData"] = {"blob": "AA=="}
    patch = reconcile.configmap_patch(current, desired_cm())
    assert patch == {
        "data": {"notes.txt": None, WATCHLIST_FILE_KEY: desired_cm()["data"][WATCHLIST_FILE_KEY]},
        "binaryData": None,
    }


def test_patch_restores_own_labels_and_owner_references_only() -> None:
    current = desired_cm()
    current["metadata"]["labels"] = {"app.kubernetes.io/name": "stockpipe", "team": "quant"}
    current["metadata"]["ownerReferences"] = []
    patch = reconcile.configmap_patch(current, desired_cm())
    assert patch is not None
    assert patch["metadata"]["labels"] == {
        "app.kubernetes.io/component": "watchlist",
        "app.kubernetes.io/managed-by": "stockpipe-operator",
    }
    assert patch["metadata"]["ownerReferences"] == desired_cm()["metadata"]["ownerReferences"]
    assert "data" not in patch


# --- status ------------------------------------------------------------------------------------


READY = reconcile.Verdict(True, Reason.RENDERED, "3 symbols in ConfigMap", 3)
NOT_READY = reconcile.Verdict(False, Reason.INVALID_SPEC, "symbols: bad", 2)


def test_first_status_sets_every_field() -> None:
    status = reconcile.next_status(None, READY, 1, NOW)
    assert status == {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Rendered",
                "message": "3 symbols in ConfigMap",
                "lastTransitionTime": "2026-03-02T15:30:05Z",
            }
        ],
        "observedGeneration": 1,
        "symbolCount": 3,
    }


def test_last_transition_time_changes_only_when_ready_flips() -> None:
    first = reconcile.next_status(None, READY, 1, NOW)
    later = NOW + timedelta(minutes=5)
    same = reconcile.next_status(first, reconcile.Verdict(True, Reason.DISABLED, "disabled", 3), 2, later)
    assert same["conditions"][0]["lastTransitionTime"] == "2026-03-02T15:30:05Z"
    assert same["conditions"][0]["reason"] == "Disabled"
    assert same["observedGeneration"] == 2
    flipped = reconcile.next_status(same, NOT_READY, 3, later)
    assert flipped["conditions"][0]["lastTransitionTime"] == "2026-03-02T15:35:05Z"
    assert flipped["conditions"][0]["status"] == "False"


def test_conditions_of_other_types_are_kept() -> None:
    foreign = {"type": "Audited", "status": "True", "reason": "Checked", "lastTransitionTime": "2026-01-01T00:00:00Z"}
    status = reconcile.next_status({"conditions": [foreign]}, READY, 1, NOW)
    assert status["conditions"][0] == foreign
    assert [c["type"] for c in status["conditions"]] == ["Audited", "Ready"]


def test_status_patch_is_none_when_nothing_changed() -> None:
    first = reconcile.next_status(None, READY, 1, NOW)
    again = reconcile.next_status(first, READY, 1, NOW + timedelta(hours=1))
    assert reconcile.status_patch(first, again) is None
    assert reconcile.status_patch(first, reconcile.next_status(first, READY, 2, NOW)) == {"observedGeneration": 2}
    assert reconcile.ready_of(first) == "True"
    assert reconcile.ready_of(None) is None


def test_format_time_is_rfc3339_utc_seconds() -> None:
    assert reconcile.format_time(NOW) == "2026-03-02T15:30:05Z"
