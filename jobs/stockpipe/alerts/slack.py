"""Slack alerts from the streaming services themselves (Airflow uses its own Slack notifier).

One message per incident (an incident key is not re-sent while it stays open), a recovery message
when it clears, and a minimum interval between messages. With no webhook configured, alerts are
logged and nothing breaks.
"""

from __future__ import annotations

import logging
import threading
import time

from pydantic import SecretStr
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from stockpipe.logs import register_secret
from stockpipe.settings import StockpipeSettings, load_settings

log = logging.getLogger("stockpipe.alerts")


class AlertSettings(StockpipeSettings):
    slack_webhook_url: SecretStr | None = None
    alert_min_interval_s: float = 60.0


class SlackAlerter:
    def __init__(self, webhook_url: str | None, min_interval_s: float = 60.0) -> None:
        self.client: WebhookClient | None = None
        if webhook_url:
            register_secret(webhook_url.rsplit("/", 1)[-1])  # the last path part is the webhook's secret
            self.client = WebhookClient(
                webhook_url, timeout=10, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)]
            )
        self.min_interval_s = min_interval_s
        self.open_incidents: set[str] = set()
        self._last_sent = 0.0
        self._lock = threading.Lock()

    def _post(self, text: str) -> bool:
        if self.client is None:
            log.warning("alert (no Slack webhook configured): %s", text)
            return False
        try:
            response = self.client.send(text=text)
        except Exception as exc:  # an alert must never take the pipeline down
            log.error("Slack alert failed: %s", exc)
            return False
        if response.status_code != 200:
            log.error("Slack answered %d to an alert: %s", response.status_code, response.body)
            return False
        return True

    def incident(self, key: str, text: str) -> bool:
        """Alert once for an incident; repeats while it is open are suppressed."""
        with self._lock:
            if key in self.open_incidents:
                return False
            now = time.monotonic()
            if now - self._last_sent < self.min_interval_s and self.open_incidents:
                log.warning("alert rate-limited: %s", text)
                self.open_incidents.add(key)
                return False
            self.open_incidents.add(key)
            self._last_sent = now
        return self._post(text)

    def resolve(self, key: str, text: str) -> bool:
        with self._lock:
            if key not in self.open_incidents:
                return False
            self.open_incidents.discard(key)
        return self._post(text)

    def notify(self, text: str) -> bool:
        return self._post(text)


def alerter_from_settings() -> SlackAlerter:
    settings = load_settings(AlertSettings)
    url = settings.slack_webhook_url.get_secret_value() if settings.slack_webhook_url else None
    return SlackAlerter(url, settings.alert_min_interval_s)


def notify_from_settings(text: str) -> bool:
    return alerter_from_settings().notify(text)
