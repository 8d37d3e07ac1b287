"""pipeline_watch: the intraday gold tables falling behind while the market is open alerts once and recovers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stockpipe.orchestration.settings import WatchThresholds
from stockpipe.orchestration.watch_alerts import run_watch

OPEN = datetime(2025, 12, 1, 14, 30, tzinfo=UTC)  # 09:30 New York
THRESHOLDS = WatchThresholds(gold_stale_after_s=180)


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def report(at: datetime, gold_newest: datetime | None, market_open: bool = True) -> dict[str, Any]:
    beats = {"producer": iso(at), "consumer": iso(at)}
    gold = {"session": "2025-12-01", "newest_fetched_at": iso(gold_newest) if gold_newest else None,
            "built_at": iso(at)}  # fmt: skip
    return {"as_of": iso(at), "market_open": market_open, "session_open": iso(OPEN), "heartbeats": beats,
            "last_event": {}, "dead_letters": 0, "gold": gold}  # fmt: skip


def test_gold_behind_alerts_once_then_recovers() -> None:
    sent: list[str] = []
    state: dict[str, Any] = {}

    def send(text: str) -> bool:
        sent.append(text)
        return True

    at = OPEN + timedelta(hours=1)
    state, texts = run_watch(report(at, at - timedelta(seconds=40)), state, THRESHOLDS, send)
    assert texts == []  # 40 s behind: fresh
    at += timedelta(minutes=5)
    state, texts = run_watch(report(at, at - timedelta(minutes=6)), state, THRESHOLDS, send)
    assert len(texts) == 1
    assert "gold is behind" in texts[0]
    assert "6 min ago" in texts[0]
    at += timedelta(minutes=5)
    state, texts = run_watch(report(at, at - timedelta(minutes=11)), state, THRESHOLDS, send)
    assert texts == []  # the same incident: announced once
    at += timedelta(minutes=5)
    state, texts = run_watch(report(at, at - timedelta(seconds=20)), state, THRESHOLDS, send)
    assert texts == [":white_check_mark: stockpipe gold is fresh again"]
    assert sent == [*sent[:1], texts[0]]


def test_not_judged_when_closed_or_without_a_loader() -> None:
    at = OPEN + timedelta(hours=8)
    _, texts = run_watch(report(at, at - timedelta(hours=3), market_open=False), {}, THRESHOLDS, lambda _t: True)
    assert texts == []
    no_loader = report(OPEN + timedelta(hours=1), None)
    del no_loader["gold"]
    _, texts = run_watch(no_loader, {}, THRESHOLDS, lambda _t: True)
    assert texts == []
    # A loader that has built nothing yet today: judged from the open.
    _, texts = run_watch(report(OPEN + timedelta(minutes=10), None), {}, THRESHOLDS, lambda _t: True)
    assert texts == [":hourglass: stockpipe gold is behind (market open): no gold row since the open"]
