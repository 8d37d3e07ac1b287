"""Pure reconcile logic: TickerWatchlists of one namespace -> the producer's ConfigMap and each one's status.

No I/O here, so every rule is unit-tested without a cluster. The kopf handlers feed in what they
see (all watchlists of the namespace, the current ConfigMap, the current status) and apply what
comes out.

Rules:
- the ConfigMap holds the union of the symbols of the enabled watchlists (sorted, deduplicated),
  each with its own options: the smallest poll interval and the union of sources of the lists
  that hold it (a trades-only list never gets REST polling because another list asks for quotes);
  with no enabled watchlist it holds an explicit empty watchlist so that the producer idles;
- one share class written two ways across lists (BRK.B in one, BRK-B in another) is streamed once,
  under the spelling of the earlier list (creation time, then name); the later list turns
  Ready=False with the reason, the rest of it is rendered;
- every live watchlist owns the ConfigMap (ownerReferences, none of them the controller, as
  there are many); when none is left the ConfigMap keeps no owner, so the empty watchlist stays
  for the producer instead of being garbage-collected under it;
- a spec the operator cannot accept, or a union over MAX_SYMBOLS, leaves the ConfigMap as it is
  (the producer keeps its last good list) and says why in the Ready condition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from stockpipe.contracts.watchlist import MAX_SYMBOLS, WATCHLIST_FILE_KEY, Source, SymbolOptions, Watchlist

GROUP = "stockpipe.io"
VERSION = "v1alpha1"
PLURAL = "tickerwatchlists"
KIND = "TickerWatchlist"
API_VERSION = f"{GROUP}/{VERSION}"

READY = "Ready"
CONFIGMAP_LABELS = {
    "app.kubernetes.io/name": "stockpipe",
    "app.kubernetes.io/component": "watchlist",
    "app.kubernetes.io/managed-by": "stockpipe-operator",
}


class Reason(StrEnum):
    RENDERED = "Rendered"  # in the ConfigMap
    DISABLED = "Disabled"  # accepted, adds nothing
    INVALID_SPEC = "InvalidSpec"  # this spec cannot be accepted
    TOO_MANY_SYMBOLS = "TooManySymbols"  # the union of the enabled watchlists is too long
    SHARE_CLASS_CONFLICT = "ShareClassConflict"  # another list streams one of its symbols spelled otherwise
    BLOCKED = "Blocked"  # fine itself, but another watchlist holds the ConfigMap back


class SpecError(ValueError):
    """A watchlist spec the operator refuses; the message is shown in the Ready condition."""


@dataclass(frozen=True)
class WatchlistObject:
    """What the reconcile needs of one TickerWatchlist, copied out of the API object."""

    name: str
    namespace: str
    uid: str
    generation: int | None
    spec: Mapping[str, Any]
    terminating: bool = False
    created: str = ""  # metadata.creationTimestamp (RFC 3339 UTC, so it sorts as text): who came first

    @property
    def age_key(self) -> tuple[str, str]:
        return self.created, self.name

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> WatchlistObject:
        meta = body.get("metadata") or {}
        spec = body.get("spec")
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            uid=str(meta.get("uid", "")),
            generation=meta.get("generation"),
            # A copy: kopf's bodies are live views that change under a stored index entry.
            spec=_plain(spec) if isinstance(spec, Mapping) else {},
            terminating=meta.get("deletionTimestamp") is not None,
            created=str(meta.get("creationTimestamp") or ""),
        )


@dataclass(frozen=True)
class Verdict:
    """The Ready condition of one watchlist, before timestamps."""

    ready: bool
    reason: Reason
    message: str
    symbol_count: int


@dataclass(frozen=True)
class Plan:
    """The outcome for a namespace: the desired ConfigMap (None: leave it alone) and a verdict per watchlist."""

    configmap: dict[str, Any] | None
    verdicts: Mapping[str, Verdict]


def parse_spec(spec: Mapping[str, Any]) -> Watchlist:
    """The spec as the producer's contract, or SpecError with a short reason.

    The CRD schema already enforces most of this at admission; checking again here protects the
    producer from an outdated CRD, and adds what a structural schema cannot express.
    """
    if "symbolOptions" in spec or "symbol_options" in spec:
        raise SpecError("symbolOptions: the operator derives it; a watchlist sets pollIntervalSeconds and sources")
    try:
        watchlist = Watchlist.model_validate(dict(spec))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'spec'}: {err['msg']}" for err in exc.errors())
        raise SpecError(problems) from None
    if not watchlist.symbols:
        raise SpecError("symbols: at least one symbol is required")
    twice = _share_class_twice(watchlist.symbols)
    if twice:
        # BRK.B and BRK-B name one security: the producer would poll it twice and store it under two keys.
        raise SpecError(f"symbols: one share class written two ways: {', '.join(twice)}")
    return watchlist


def plan(watchlists: Iterable[WatchlistObject], *, namespace: str, configmap_name: str) -> Plan:
    """Decide the producer's ConfigMap and every live watchlist's verdict in one namespace."""
    live = sorted((w for w in watchlists if w.namespace == namespace and not w.terminating), key=lambda w: w.name)
    parsed: dict[str, Watchlist] = {}
    errors: dict[str, str] = {}
    for item in live:
        try:
            parsed[item.name] = parse_spec(item.spec)
        except SpecError as exc:
            errors[item.name] = str(exc)

    enabled = [parsed[w.name] for w in live if w.name in parsed and parsed[w.name].enabled]
    verdicts: dict[str, Verdict] = {}

    if errors:
        names = ", ".join(sorted(errors))
        for item in live:
            if item.name in errors:
                verdicts[item.name] = Verdict(False, Reason.INVALID_SPEC, errors[item.name], _count(item.spec))
            else:
                message = f"ConfigMap {configmap_name} left unchanged while these watchlists are invalid: {names}"
                verdicts[item.name] = Verdict(False, Reason.BLOCKED, message, _count(item.spec))
        return Plan(configmap=None, verdicts=verdicts)

    enabled_items = sorted((w for w in live if parsed[w.name].enabled), key=lambda w: w.age_key)
    conflicts = _share_class_conflicts([(w.name, parsed[w.name]) for w in enabled_items])
    distinct = len({symbol for w in enabled for symbol in w.symbols} - {s for c in conflicts.values() for s in c})
    if distinct > MAX_SYMBOLS:
        message = (
            f"the enabled watchlists in {namespace} add up to {distinct} distinct symbols, at most {MAX_SYMBOLS}"
            f" fit; ConfigMap {configmap_name} left unchanged"
        )
        for item in live:
            reason = Reason.TOO_MANY_SYMBOLS if parsed[item.name].enabled else Reason.BLOCKED
            verdicts[item.name] = Verdict(False, reason, message, _count(item.spec))
        return Plan(configmap=None, verdicts=verdicts)

    watchlist = merge([(parsed[w.name], conflicts.get(w.name, {})) for w in enabled_items])
    for item in live:
        own = parsed[item.name]
        if item.name in conflicts:
            spelled = ", ".join(f"{mine} as {theirs}" for mine, theirs in sorted(conflicts[item.name].items()))
            message = (
                f"one share class written two ways across watchlists: {spelled} (an earlier watchlist's"
                f" spelling is streamed); its other symbols are in ConfigMap {configmap_name}"
            )
            verdicts[item.name] = Verdict(False, Reason.SHARE_CLASS_CONFLICT, message, len(own.symbols))
        elif own.enabled:
            message = (
                f"{len(own.symbols)} symbols in ConfigMap {configmap_name}"
                f" ({distinct} from {len(enabled)} enabled watchlists)"
            )
            verdicts[item.name] = Verdict(True, Reason.RENDERED, message, len(own.symbols))
        else:
            message = f"disabled: its symbols are not streamed ({distinct} symbols in ConfigMap {configmap_name})"
            verdicts[item.name] = Verdict(True, Reason.DISABLED, message, len(own.symbols))
    body = render_configmap(watchlist, owners=live, namespace=namespace, name=configmap_name)
    return Plan(configmap=body, verdicts=verdicts)


def merge(enabled: Sequence[tuple[Watchlist, Mapping[str, str]]]) -> Watchlist:
    """The producer's view of the enabled watchlists, each symbol with the options of the lists that hold it.

    `enabled` pairs each list with the symbols it leaves out (its spelling of a share class that an earlier
    list streams: symbol -> the spelling streamed); an explicit empty watchlist when there are none.
    """
    intervals: dict[str, int] = {}
    sources: dict[str, set[Source]] = {}
    for watchlist, left_out in enabled:
        for symbol in watchlist.symbols:
            streamed = left_out.get(symbol, symbol)
            intervals[streamed] = min(
                intervals.get(streamed, watchlist.poll_interval_seconds), watchlist.poll_interval_seconds
            )
            sources.setdefault(streamed, set()).update(watchlist.sources)
    if not intervals:
        return Watchlist(symbols=[])
    return Watchlist(
        symbols=sorted(intervals),
        # Of the whole file, for readers; each symbol's own entry is what the producer applies.
        poll_interval_seconds=min(intervals.values()),
        sources=sorted({source for used in sources.values() for source in used}),
        symbol_options={
            symbol: SymbolOptions(poll_interval_seconds=intervals[symbol], sources=sorted(sources[symbol]))
            for symbol in sorted(intervals)
        },
    )


def render_configmap(
    watchlist: Watchlist, *, owners: Sequence[WatchlistObject], namespace: str, name: str
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(CONFIGMAP_LABELS)}
    metadata["ownerReferences"] = [owner_reference(w) for w in sorted(owners, key=lambda w: w.name)]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {WATCHLIST_FILE_KEY: watchlist.to_json()},
    }


def owner_reference(watchlist: WatchlistObject) -> dict[str, Any]:
    # controller=False: an object has at most one controller, and this ConfigMap has many owners.
    # blockOwnerDeletion=False: nothing to wait for, and it would need extra RBAC on the owners.
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": watchlist.name,
        "uid": watchlist.uid,
        "controller": False,
        "blockOwnerDeletion": False,
    }


def configmap_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """A JSON merge patch that turns the current ConfigMap into the desired one, None when it already is.

    Only what the operator owns is compared: all of data (keys added by hand are removed), binaryData,
    the ownerReferences, and its own labels (other labels and annotations stay).
    """
    patch: dict[str, Any] = {}
    current_data = current.get("data") or {}
    desired_data = desired.get("data") or {}
    if current_data != desired_data:
        patch["data"] = {**{key: None for key in current_data if key not in desired_data}, **desired_data}
    if current.get("binaryData"):
        patch["binaryData"] = None

    meta: dict[str, Any] = {}
    current_meta = current.get("metadata") or {}
    desired_meta = desired.get("metadata") or {}
    current_labels = current_meta.get("labels") or {}
    labels = {k: v for k, v in (desired_meta.get("labels") or {}).items() if current_labels.get(k) != v}
    if labels:
        meta["labels"] = labels
    current_owners = _owner_keys(current_meta.get("ownerReferences") or [])
    desired_owners = desired_meta.get("ownerReferences") or []
    if current_owners != _owner_keys(desired_owners):
        # A merge patch replaces lists whole; null removes the field when no owner is left.
        meta["ownerReferences"] = desired_owners or None
    if meta:
        patch["metadata"] = meta
    return patch or None


def next_status(
    current: Mapping[str, Any] | None, verdict: Verdict, generation: int | None, now: datetime
) -> dict[str, Any]:
    """The status for a verdict; the Ready condition keeps its lastTransitionTime unless its status flips."""
    current = current or {}
    conditions = [c for c in current.get("conditions") or [] if isinstance(c, Mapping)]
    old = next((c for c in conditions if c.get("type") == READY), None)
    status = "True" if verdict.ready else "False"
    kept = old is not None and old.get("status") == status and old.get("lastTransitionTime")
    ready = {
        "type": READY,
        "status": status,
        "reason": str(verdict.reason),
        "message": verdict.message,
        "lastTransitionTime": old["lastTransitionTime"] if kept and old is not None else format_time(now),
    }
    # Conditions of other types belong to someone else: keep them, in their order.
    others = [dict(c) for c in conditions if c.get("type") != READY]
    result: dict[str, Any] = {"conditions": [*others, ready], "symbolCount": verdict.symbol_count}
    if generation is not None:
        result["observedGeneration"] = generation
    return result


def status_patch(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """The status fields that differ, None when nothing does (no write, no watch event, no loop)."""
    current = current or {}
    changed = {key: value for key, value in desired.items() if _plain(current.get(key)) != value}
    return changed or None


def ready_of(status: Mapping[str, Any] | None) -> str | None:
    """The Ready condition's status string ("True"/"False"), None when there is none yet."""
    for condition in (status or {}).get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == READY:
            value = condition.get("status")
            return str(value) if value is not None else None
    return None


def format_time(moment: datetime) -> str:
    # metav1.Time: RFC 3339 in UTC with whole seconds.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _share_class_twice(symbols: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    twice: list[str] = []
    for symbol in symbols:
        key = _share_class(symbol)
        if key in seen and seen[key] != symbol:
            twice.append(f"{seen[key]}/{symbol}")
        seen.setdefault(key, symbol)
    return twice


def _share_class_conflicts(by_age: Sequence[tuple[str, Watchlist]]) -> dict[str, dict[str, str]]:
    """Per watchlist name, its symbols that an earlier list spells otherwise: {symbol: the earlier spelling}."""
    first: dict[str, str] = {}  # share class -> the spelling of the earliest list that has it
    conflicts: dict[str, dict[str, str]] = {}
    for name, watchlist in by_age:
        for symbol in watchlist.symbols:
            streamed = first.setdefault(_share_class(symbol), symbol)
            if streamed != symbol:
                conflicts.setdefault(name, {})[symbol] = streamed
    return conflicts


def _share_class(symbol: str) -> str:
    return symbol.replace("-", ".")


def _count(spec: Mapping[str, Any]) -> int:
    symbols = spec.get("symbols")
    return len(symbols) if isinstance(symbols, list) else 0


def _owner_keys(refs: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (r.get("apiVersion"), r.get("kind"), r.get("name"), r.get("uid"), bool(r.get("controller"))) for r in refs
    )


def _plain(value: Any) -> Any:
    """Deep copy into plain dicts and lists (kopf hands out mapping views)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
