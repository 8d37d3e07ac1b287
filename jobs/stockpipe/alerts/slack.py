"""Slack alerts from the streaming services themselves (Airflow uses the provider's notifier: see
stockpipe.orchestration.notify).

One message per incident (an open incident is not re-sent), a recovery message when it clears (only
for incidents that were announced), and at most one new-incident message per `min_interval_s`; an
incident held back by the limit, or whose message Slack refused, is sent on a later call while it is
still open. With no webhook configured, alerts are logged and nothing breaks: an alert never raises.

Typical use in a long-running service:
    alerter = alerter_from_settings()
    alerter.incident("finnhub-key", "Finnhub rejected the API key (401): quotes stopped")
    ...
    alerter.resolve("finnhub-key", "Finnhub accepts the API key again: quotes flowing")
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pydantic import Field, SecretStr
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from stockpipe.alerts.incidents import IncidentBook, RateLimit
from stockpipe.logs import redact, register_secret
from stockpipe.settings import StockpipeSettings, load_settings

log = logging.getLogger("stockpipe.alerts")


class AlertSettings(StockpipeSettings):
    slack_webhook_url: SecretStr | None = None
    alert_min_interval_s: float = Field(60.0, gt=0, description="at least this long between new-incident messages")


class SlackAlerter:
    def __init__(
        self,
        webhook_url: str | None,
        min_interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        timeout_s: int = 10,
    ) -> None:
        self.client: WebhookClient | None = None
        if webhook_url:
            register_secret(webhook_url.rsplit("/", 1)[-1])  # the last path part is the webhook's secret
            if "/services/" in webhook_url:
                register_secret(webhook_url.split("/services/", 1)[1])  # and the whole path identifies it
            self.client = WebhookClient(
                webhook_url, timeout=timeout_s, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)]
            )
        self.min_interval_s = min_interval_s
        self.book = IncidentBook(RateLimit(1, min_interval_s))
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def open_incidents(self) -> set[str]:
        with self._lock:
            return set(self.book.open_keys())

    def _post(self, text: str) -> bool:
        if self.client is None:
            log.warning("alert (no Slack webhook configured): %s", redact(text))
            return False
        try:
            response = self.client.send(text=text)
        except Exception as exc:  # an alert must never take the pipeline down
            log.error("Slack alert failed: %s", redact(str(exc)))
            return False
        if response.status_code != 200:
            log.error("Slack answered %d to an alert: %s", response.status_code, response.body)
            return False
        return True

    def incident(self, key: str, text: str, kind: str = "service") -> bool:
        """Alert once for an incident; returns whether a message went out now."""
        with self._lock:
            now = self._clock()
            due = self.book.open(key, kind, text, now)
            if due is None:
                return False  # announced already
            if not self.book.may_announce(now):
                log.warning("alert held back by the rate limit (sent when allowed): %s", redact(text))
                return False
            # Reserve the slot before posting (outside the lock) so that concurrent callers respect it.
            self.book.limit.record(now)
        sent = self._post(text)
        if sent:
            with self._lock:
                if key in self.book.incidents:
                    self.book.incidents[key].announced = True
        return sent

    def resolve(self, key: str, text: str) -> bool:
        """The incident cleared; a recovery message goes out if its opening message did."""
        with self._lock:
            recovered = self.book.resolve(key)
        if recovered is None:
            return False
        return self._post(text)

    def notify(self, text: str) -> bool:
        """A one-off message (not an incident): not rate-limited, e.g. the last word before exiting."""
        return self._post(text)


def alerter_from_settings() -> SlackAlerter:
    settings = load_settings(AlertSettings)
    url = settings.slack_webhook_url.get_secret_value() if settings.slack_webhook_url else None
    return SlackAlerter(url, settings.alert_min_interval_s)


def notify_from_settings(text: str) -> bool:
    return alerter_from_settings().notify(text)
