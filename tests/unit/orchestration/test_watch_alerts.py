"""pipeline_watch's judgement: heartbeats, freshness in market hours, dead-letter growth, rate limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stockpipe.orchestration.settings import WatchThresholds
from stockpipe.orchestration.watch_alerts import run_watch

OPEN = datetime(2025, 12, 1, 14, 30, tzinfo=UTC)  # 09:30 New York
THRESHOLDS = WatchThresholds(heartbeat_max_age_s=180, stale_after_minutes=30, alerts_per_hour=12)


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def report(at: datetime, beats: dict[str, datetime], last: dict[str, datetime | None] | None = None,
           market_open: bool = True, dead_letters: int = 0) -> dict[str, Any]:  # fmt: skip
    return {
        "as_of": iso(at),
        "market_open": market_open,
        "session_open": iso(OPEN),
        "heartbeats": {c: iso(t) for c, t in beats.items()},
        "last_event": {s: (iso(t) if t else None) for s, t in (last or {}).items()},
        "dead_letters": dead_letters,
    }


class Slack:
    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.texts: list[str] = []

    def __call__(self, text: str) -> bool:
        if self.up:
            self.texts.append(text)
        return self.up


def test_heartbeat_lost_once_then_recovered_once() -> None:
    slack, state = Slack(), {}
    at = OPEN + timedelta(hours=1)
    alive = {"producer": at - timedelta(seconds=20), "consumer": at - timedelta(seconds=25)}
    state, _ = run_watch(report(at, alive), state, THRESHOLDS, slack)
    assert slack.texts == []
    silent_since = at - timedelta(seconds=20)  # the producer goes quiet; the consumer keeps beating
    for minutes in (10, 15):
        t = at + timedelta(minutes=minutes)
        state, _ = run_watch(report(t, {"producer": silent_since, "consumer": t}), state, THRESHOLDS, slack)
    back_at = at + timedelta(minutes=20)
    back = {"producer": back_at - timedelta(seconds=5), "consumer": back_at - timedelta(seconds=5)}
    state, _ = run_watch(report(back_at, back), state, THRESHOLDS, slack)
    assert slack.texts == [
        ":rotating_light: stockpipe heartbeat lost: producer (last heartbeat 10 min ago)",
        ":white_check_mark: stockpipe heartbeat recovered: producer alive again",
    ]
    assert state["book"]["incidents"] == {}


def test_stale_symbols_in_market_hours_and_untouched_after_the_close() -> None:
    slack, state = Slack(), {}
    at = OPEN + timedelta(hours=2)
    beats = {"producer": at, "consumer": at}
    last = {"AAPL": at - timedelta(minutes=2), "MSFT": at - timedelta(minutes=45), "NVDA": None}
    state, _ = run_watch(report(at, beats, last), state, THRESHOLDS, slack)
    assert slack.texts == [
        ":warning: stockpipe data stale (market open): MSFT (last data 45 min ago), NVDA (no data since the open)"
    ]
    closed = at + timedelta(hours=6)
    state, _ = run_watch(report(closed, {"producer": closed, "consumer": closed}, {}, market_open=False), state,
                         THRESHOLDS, slack)  # fmt: skip
    assert len(slack.texts) == 1  # no judgement outside market hours, no false "fresh again"
    assert sorted(state["book"]["incidents"]) == ["MSFT", "NVDA"]


def test_the_first_minutes_after_the_open_are_not_stale() -> None:
    slack = Slack()
    at = OPEN + timedelta(minutes=10)
    run_watch(report(at, {"producer": at, "consumer": at}, {"AAPL": None}), {}, THRESHOLDS, slack)
    assert slack.texts == []


def test_dead_letter_growth_alerts_and_clears() -> None:
    slack, state = Slack(), {}
    at = OPEN
    beats = {"producer": at, "consumer": at}
    state, _ = run_watch(report(at, beats, market_open=False, dead_letters=10), state, THRESHOLDS, slack)
    assert slack.texts == []  # the first count is a baseline
    for minutes, count in ((5, 14), (10, 20), (15, 20)):
        t = at + timedelta(minutes=minutes)
        state, _ = run_watch(report(t, {"producer": t, "consumer": t}, market_open=False, dead_letters=count), state,
                             THRESHOLDS, slack)  # fmt: skip
    assert slack.texts == [
        ":warning: stockpipe dead letters growing: +4 since the last check, 14 in all",
        ":white_check_mark: stockpipe dead letters stopped growing",
    ]


def test_the_rate_limit_holds_new_incidents_back_for_a_later_run() -> None:
    slack, state = Slack(), {}
    tight = THRESHOLDS.model_copy(update={"alerts_per_hour": 1})
    at = OPEN + timedelta(hours=2)
    state, _ = run_watch(report(at, {"consumer": at}), state, tight, slack)  # producer lost: 1st message
    t2 = at + timedelta(minutes=5)
    state, _ = run_watch(report(t2, {"consumer": t2}, {"AAPL": None}), state, tight, slack)  # stale: held back
    assert len(slack.texts) == 1
    t3 = at + timedelta(minutes=65)
    state, _ = run_watch(report(t3, {"consumer": t3}, {"AAPL": None}), state, tight, slack)
    assert slack.texts[-1].startswith(":warning: stockpipe data stale (market open): AAPL")
    assert len(slack.texts) == 2


def test_slack_down_keeps_the_incident_due() -> None:
    at = OPEN + timedelta(hours=2)
    down = Slack(up=False)
    state, sent = run_watch(report(at, {"consumer": at}), {}, THRESHOLDS, down)
    assert sent == []
    up = Slack()
    t2 = at + timedelta(minutes=5)
    run_watch(report(t2, {"consumer": t2}), state, THRESHOLDS, up)
    assert up.texts == [":rotating_light: stockpipe heartbeat lost: producer (no heartbeat in the probe's lookback)"]
