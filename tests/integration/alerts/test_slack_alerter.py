"""The streaming services' SlackAlerter against the Slack stand-in: once per incident, a recovery,
the rate limit, Slack's own 429s retried, failures retried on a later call, and no webhook at all."""

from __future__ import annotations

import logging

import pytest

from stockpipe.alerts.slack import SlackAlerter, alerter_from_settings
from stockpipe_dev.localservices.slack_standin import SlackWebhookStandin


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_message_per_incident_and_one_recovery(slack_standin: SlackWebhookStandin) -> None:
    clock = Clock()
    alerter = SlackAlerter(slack_standin.webhook_url(), min_interval_s=60, clock=clock)
    assert alerter.incident("finnhub-key", "Finnhub rejected the API key (401)")
    assert not alerter.incident("finnhub-key", "Finnhub rejected the API key (401)")  # still open: suppressed
    clock.now += 300
    assert not alerter.incident("finnhub-key", "Finnhub rejected the API key (401)")
    assert alerter.resolve("finnhub-key", "Finnhub accepts the API key again")
    assert not alerter.resolve("finnhub-key", "Finnhub accepts the API key again")  # nothing open any more
    assert slack_standin.texts() == ["Finnhub rejected the API key (401)", "Finnhub accepts the API key again"]


def test_new_incidents_are_rate_limited_and_sent_when_allowed(slack_standin: SlackWebhookStandin) -> None:
    clock = Clock()
    alerter = SlackAlerter(slack_standin.webhook_url(), min_interval_s=60, clock=clock)
    assert alerter.incident("kafka", "Kafka unreachable")
    clock.now += 10
    assert not alerter.incident("lake", "lake writes failing")  # within a minute of the last one: held back
    assert alerter.open_incidents == {"kafka", "lake"}
    clock.now += 60
    assert alerter.incident("lake", "lake writes failing")  # still open, now allowed: announced late
    assert slack_standin.texts() == ["Kafka unreachable", "lake writes failing"]


def test_a_held_back_incident_that_clears_sends_no_recovery(slack_standin: SlackWebhookStandin) -> None:
    clock = Clock()
    alerter = SlackAlerter(slack_standin.webhook_url(), min_interval_s=60, clock=clock)
    alerter.incident("kafka", "Kafka unreachable")
    alerter.incident("lake", "lake writes failing")
    assert not alerter.resolve("lake", "lake writes work again")  # nobody heard of it: no "recovered"
    assert slack_standin.texts() == ["Kafka unreachable"]


def test_slacks_429_is_retried_by_the_client(slack_standin: SlackWebhookStandin) -> None:
    slack_standin.fail_next(1, status=429)  # Retry-After: 1
    alerter = SlackAlerter(slack_standin.webhook_url(), min_interval_s=60, clock=Clock())
    assert alerter.incident("producer", "producer stopped")
    assert slack_standin.texts() == ["producer stopped"]


def test_a_failed_post_is_sent_on_a_later_call(slack_standin: SlackWebhookStandin) -> None:
    clock = Clock()
    slack_standin.fail_next(1, status=500)
    alerter = SlackAlerter(slack_standin.webhook_url(), min_interval_s=60, clock=clock)
    assert not alerter.incident("producer", "producer stopped")
    assert slack_standin.texts() == []
    clock.now += 60
    assert alerter.incident("producer", "producer stopped")
    assert slack_standin.texts() == ["producer stopped"]


def test_without_a_webhook_alerts_are_logged_and_nothing_breaks(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("STOCKPIPE_SLACK_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("STOCKPIPE_SECRETS_DIR", raising=False)
    alerter = alerter_from_settings()
    with caplog.at_level(logging.WARNING, logger="stockpipe.alerts"):
        assert not alerter.incident("producer", "producer stopped")
        assert not alerter.notify("a one-off")
    assert "alert (no Slack webhook configured): producer stopped" in caplog.text


def test_settings_name_the_webhook(slack_standin: SlackWebhookStandin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKPIPE_SLACK_WEBHOOK_URL", slack_standin.webhook_url())
    monkeypatch.setenv("STOCKPIPE_ALERT_MIN_INTERVAL_S", "5")
    monkeypatch.delenv("STOCKPIPE_SECRETS_DIR", raising=False)
    alerter = alerter_from_settings()
    assert alerter.min_interval_s == 5
    assert alerter.notify("stockpipe producer: key rejected")
    assert slack_standin.texts() == ["stockpipe producer: key rejected"]
