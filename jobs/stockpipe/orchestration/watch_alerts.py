"""pipeline_watch's judgement: the probe's report against thresholds, incidents kept between runs.

Incident state lives in one Airflow Variable (JSON, default `stockpipe_watch_state`): it is in
Airflow's metadata database, which every worker already reaches with no extra credentials, is
durable and transactional, survives pod restarts, and an operator can read or reset it in the UI.
pipeline_watch runs with max_active_runs=1, so no two runs update it at once.

Kinds of incident: heartbeat (one per component), stale (one per symbol, market hours only: outside
them stale incidents stay as they are until the next session shows data again) and dlq (dead letters
grew by more than the tolerance since the previous run). Each run sends at most one message per kind
for new incidents and one for recoveries, listing the keys, and new-incident messages are limited to
`alerts_per_hour` (a held-back incident is announced by a later run while it is still open).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stockpipe.alerts.incidents import Incident, IncidentBook
from stockpipe.orchestration.settings import WatchThresholds

log = logging.getLogger("stockpipe.orchestration.watch")

MAX_LISTED = 15  # keys named in one message; the rest are counted


@dataclass(frozen=True)
class Alert:
    kind: str
    recovery: bool
    text: str
    incidents: tuple[Incident, ...]


def _at(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _ago(seconds: float) -> str:
    return f"{seconds / 60:.0f} min ago" if seconds >= 120 else f"{seconds:.0f} s ago"


def _listing(incidents: list[Incident], with_detail: bool) -> str:
    shown = [f"{i.key} ({i.detail})" if with_detail else i.key for i in incidents[:MAX_LISTED]]
    more = len(incidents) - MAX_LISTED
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def heartbeat_problems(report: dict[str, Any], thresholds: WatchThresholds, as_of: datetime) -> dict[str, str]:
    beats = report.get("heartbeats") or {}
    problems: dict[str, str] = {}
    for component in thresholds.components:
        last = _at(beats.get(component))
        if last is None:
            problems[component] = "no heartbeat in the probe's lookback"
        elif (age := (as_of - last).total_seconds()) > thresholds.heartbeat_max_age_s:
            problems[component] = f"last heartbeat {_ago(age)}"
    return problems


def stale_problems(report: dict[str, Any], thresholds: WatchThresholds, as_of: datetime) -> dict[str, str] | None:
    """Stale symbols, or None outside market hours (freshness is not judged then)."""
    if not report.get("market_open"):
        return None
    opened = _at(report.get("session_open"))
    problems: dict[str, str] = {}
    for symbol, value in dict(report.get("last_event") or {}).items():
        last = _at(value)
        since = max(t for t in (last, opened) if t is not None) if (last or opened) else as_of
        age = (as_of - since).total_seconds()
        if age > thresholds.stale_after_minutes * 60:
            problems[symbol] = f"last data {_ago(age)}" if last is not None else "no data since the open"
    return problems


def gold_problems(report: dict[str, Any], thresholds: WatchThresholds, as_of: datetime) -> dict[str, str] | None:
    """The intraday gold tables' staleness while the market is open; None when not judged (closed, no loader)."""
    gold = report.get("gold")
    if not report.get("market_open") or not isinstance(gold, dict):
        return None
    newest = _at(gold.get("newest_fetched_at"))
    opened = _at(report.get("session_open"))
    since = max((t for t in (newest, opened) if t is not None), default=as_of)
    age = (as_of - since).total_seconds()
    if age <= thresholds.gold_stale_after_s:
        return {}
    return {"gold": f"newest intraday gold row fetched {_ago(age)}" if newest else "no gold row since the open"}


def evaluate(
    report: dict[str, Any], state: dict[str, Any], thresholds: WatchThresholds
) -> tuple[IncidentBook, list[Alert], dict[str, Any]]:
    """The messages due now, the updated book, and the other state to keep (the dead-letter count)."""
    as_of = _at(report.get("as_of"))
    if as_of is None:
        raise ValueError("the probe report has no as_of")
    now = as_of.timestamp()
    book = IncidentBook.from_dict(state.get("book"), thresholds.alerts_per_hour, 3600.0)
    alerts: list[Alert] = []

    def transitions(kind: str, problems: dict[str, str], opening: Callable[[list[Incident]], str],
                    closing: Callable[[list[Incident]], str]) -> None:  # fmt: skip
        changes = book.update(kind, problems, now)
        if changes.opened:
            alerts.append(Alert(kind, False, opening(changes.opened), tuple(changes.opened)))
        if changes.resolved:
            alerts.append(Alert(kind, True, closing(changes.resolved), tuple(changes.resolved)))

    transitions(
        "heartbeat",
        heartbeat_problems(report, thresholds, as_of),
        lambda new: f":rotating_light: stockpipe heartbeat lost: {_listing(new, True)}",
        lambda back: f":white_check_mark: stockpipe heartbeat recovered: {_listing(back, False)} alive again",
    )
    stale = stale_problems(report, thresholds, as_of)
    if stale is not None:
        transitions(
            "stale",
            stale,
            lambda new: f":warning: stockpipe data stale (market open): {_listing(new, True)}",
            lambda back: f":white_check_mark: stockpipe data fresh again: {_listing(back, False)}",
        )
    gold = gold_problems(report, thresholds, as_of)
    if gold is not None:
        transitions(
            "gold",
            gold,
            lambda new: f":hourglass: stockpipe gold is behind (market open): {new[0].detail}",
            lambda _back: ":white_check_mark: stockpipe gold is fresh again",
        )
    dead_letters = int(report.get("dead_letters") or 0)
    previous = state.get("dead_letters")
    if previous is not None:
        growth = dead_letters - int(previous)
        problems: dict[str, str] = {}
        if growth > thresholds.dlq_growth_max:
            problems["dlq"] = f"+{growth:,} since the last check, {dead_letters:,} in all"
        transitions(
            "dlq",
            problems,
            lambda new: f":warning: stockpipe dead letters growing: {new[0].detail}",
            lambda _back: ":white_check_mark: stockpipe dead letters stopped growing",
        )
    return book, alerts, {"dead_letters": dead_letters, "as_of": report.get("as_of")}


def run_watch(
    report: dict[str, Any],
    state: dict[str, Any],
    thresholds: WatchThresholds,
    send: Callable[[str], bool],
) -> tuple[dict[str, Any], list[str]]:
    """Judge, send what is due (respecting the rate limit), return the new state and the texts sent."""
    book, alerts, extra = evaluate(report, state, thresholds)
    now = (_at(report.get("as_of")) or datetime.min).timestamp()
    sent: list[str] = []
    for alert in alerts:
        if alert.recovery:
            if send(alert.text):
                sent.append(alert.text)
            continue
        if not book.may_announce(now):
            log.warning("rate limit: held back until a later run: %s", alert.text)
            continue
        if send(alert.text):
            book.announced(alert.incidents, now)
            sent.append(alert.text)
    return {"book": book.to_dict(), **extra}, sent
