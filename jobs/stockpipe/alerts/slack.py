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
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
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
        clock: Callable[[], float] | None = None,
        timeout_s: int = 10,
        state_file: Path | None = None,
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
        # A persisted book outlives the process, so its times are wall-clock; otherwise monotonic.
        self._clock = clock or (time.time if state_file else time.monotonic)
        self.state_file = state_file
        self.book = self._load()
        self._lock = threading.Lock()

    def _load(self) -> IncidentBook:
        if self.state_file is not None:
            try:
                data = orjson.loads(self.state_file.read_bytes())
                book = IncidentBook.from_dict(data, 1, self.min_interval_s)
                log.info("incident book from %s: open %s", self.state_file, book.open_keys() or "none")
                return book
            except FileNotFoundError:
                pass
            except (OSError, orjson.JSONDecodeError, TypeError, ValueError) as exc:
                log.error("incident book %s unreadable (%s): starting with none open", self.state_file, exc)
        return IncidentBook(RateLimit(1, self.min_interval_s))

    def _save(self) -> None:
        """Write the book (under the lock) so that a restart knows what was announced: write, then rename."""
        if self.state_file is None:
            return
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_file.with_name(f"{self.state_file.name}.tmp")
            tmp.write_bytes(orjson.dumps(self.book.to_dict()))
            os.replace(tmp, self.state_file)
        except OSError as exc:  # an alert must never take the pipeline down
            log.error("incident book not saved to %s: %s", self.state_file, exc)

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
                self._save()
                return False
            # Reserve the slot before posting (outside the lock) so that concurrent callers respect it.
            self.book.limit.record(now)
        sent = self._post(text)
        with self._lock:
            if sent and key in self.book.incidents:
                self.book.incidents[key].announced = True
            self._save()
        return sent

    def resolve(self, key: str, text: str) -> bool:
        """The incident cleared; a recovery message goes out if its opening message did."""
        with self._lock:
            known = key in self.book.incidents
            recovered = self.book.resolve(key)
            if known:
                self._save()
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
