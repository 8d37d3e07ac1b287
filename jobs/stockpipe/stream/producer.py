"""`stockpipe producer`: market data -> Kafka during NYSE sessions.

Quotes are polled per symbol at the watchlist's interval (fair rotation: the most overdue symbol goes
first) through one rate budget for all REST calls. A quote whose `t` has not moved since the last one
published for its symbol is not published again; an all-zero quote (unknown symbol) is rejected with
a reason. Outside sessions the producer sleeps until the next open, sending heartbeats, and marks the
session's end with a watermark in every partition so the consumer closes its files.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from prometheus_client import Counter, Gauge
from pydantic import Field, SecretStr, model_validator

from stockpipe.alerts.slack import SlackAlerter
from stockpipe.contracts.messages import QUOTE_V1, TRADE_V1, quote_message
from stockpipe.contracts.watchlist import Source, Watchlist, default_sources
from stockpipe.logs import register_secret
from stockpipe.marketdata import calendar
from stockpipe.marketdata.ratelimit import RateBudget
from stockpipe.observability import start_observability
from stockpipe.settings import KafkaSettings, StockpipeSettings
from stockpipe.stream.clock import Clock, ReplayClock, WallClock
from stockpipe.stream.heartbeat import Heartbeat
from stockpipe.stream.publisher import ProducerQueueFull, Publisher, PublishResult
from stockpipe.stream.sources import (
    FinnhubQuoteSource,
    KeyRejected,
    QuoteSource,
    SourceStopped,
    SyntheticQuoteSource,
)
from stockpipe.stream.trades import FinnhubTradeStream, SyntheticTrades
from stockpipe.stream.watchlist_file import WatchlistFile
from stockpipe.stream.window_marks import WindowMarks

log = logging.getLogger("stockpipe.producer")

DEDUPLICATED = Counter("stockpipe_producer_deduplicated_total", "Quotes not published: same t as the last one")
ZERO_QUOTES = Counter("stockpipe_producer_zero_quotes_total", "All-zero quotes rejected (unknown symbol)")
SYMBOLS = Gauge("stockpipe_producer_symbols", "Symbols on the watchlist")


class ProducerSettings(StockpipeSettings):
    kafka: KafkaSettings = KafkaSettings()
    source: Literal["synthetic", "finnhub"] = "synthetic"
    finnhub_token: SecretStr | None = None
    finnhub_api_url: str | None = Field(None, description="override for a stand-in or proxy")
    finnhub_ws_url: str = "wss://ws.finnhub.io"
    calls_per_minute: int = Field(60, ge=1, le=1800, description="the REST rate budget (free tier: 60)")
    watchlist_file: Path | None = Field(
        None, description="watchlist.json (the operator's ConfigMap); re-read on change"
    )
    # Without a watchlist file, the watchlist is these three settings.
    symbols: list[str] = Field(default_factory=lambda: ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL"])
    sources: list[Source] = Field(default_factory=default_sources, min_length=1)
    poll_interval_seconds: int = Field(15, ge=5, le=3600)
    extended_hours: bool = Field(False, description="also poll 04:00-09:30 and 16:00-20:00 New York")
    replay_date: date | None = Field(None, description="replay this session on an accelerated clock, then exit")
    replay_speed: float = Field(600.0, gt=0, description="simulated seconds per real second")
    metrics_port: int = Field(9101, ge=0, le=65535)
    heartbeat_seconds: float = Field(30.0, gt=0)
    window_mark_seconds: int | None = Field(
        30, ge=1, le=3600, description="live sessions: a watermark per window boundary (closes the consumer's files)"
    )
    slack_webhook_url: SecretStr | None = Field(None, description="incidents and recoveries go here")
    alert_min_interval_s: float = Field(60.0, gt=0, description="at least this long between new-incident messages")
    max_queue_messages: int = Field(100_000, ge=100)
    queue_full_timeout_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _finnhub_needs_a_token(self) -> ProducerSettings:
        if self.source == "finnhub" and self.finnhub_token is None:
            raise ValueError("finnhub_token: required when source is finnhub (STOCKPIPE_FINNHUB_TOKEN)")
        if self.replay_date is not None and self.source != "synthetic":
            raise ValueError("replay_date: only the synthetic source can replay a session")
        if self.replay_date is not None and not calendar.is_session(self.replay_date):
            raise ValueError(f"replay_date: {self.replay_date} is not an NYSE session")
        return self


@dataclass
class ProducerStats:
    published: int = 0
    deduplicated: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    fetched: int = 0
    rounds: int = 0


class QuoteProducer:
    def __init__(
        self,
        settings: ProducerSettings,
        source: QuoteSource,
        clock: Clock,
        stop: threading.Event,
        publisher: Publisher | None = None,
        alerter: SlackAlerter | None = None,
    ) -> None:
        self.settings = settings
        self.alerter = alerter or SlackAlerter(None)
        self.source = source
        self.clock = clock
        self.stop = stop
        self.publisher = publisher or Publisher(
            settings.kafka, settings.max_queue_messages, settings.queue_full_timeout_s
        )
        self.heartbeat = Heartbeat(settings.kafka, "producer", settings.heartbeat_seconds)
        live_marks = None if isinstance(clock, ReplayClock) else settings.window_mark_seconds
        k = settings.kafka
        self.window_marks = WindowMarks(self.publisher, [k.topic_quotes, k.topic_trades], live_marks)
        self.watchlist_file = WatchlistFile(settings.watchlist_file) if settings.watchlist_file else None
        self._static = Watchlist(
            symbols=settings.symbols, sources=settings.sources, poll_interval_seconds=settings.poll_interval_seconds
        )
        self.last_t: dict[str, int] = {}
        self.next_due: dict[str, datetime] = {}
        self.stats = ProducerStats()
        self._marked_close: date | None = None
        self._trade_minute: dict[str, datetime] = {}
        self.synthetic_trades = SyntheticTrades(source.market) if isinstance(source, SyntheticQuoteSource) else None

    @property
    def watchlist(self) -> Watchlist:
        return self.watchlist_file.current if self.watchlist_file else self._static

    def trade_symbols(self) -> set[str]:
        """The symbols whose trades the websocket should stream now (none outside the producer's hours)."""
        if self.watchlist_file:
            self.watchlist_file.poll()
        # Subscribed only in the producer's hours (the extended session when it is on), so no trade
        # arrives after the session's watermark.
        if not self.in_hours(datetime.now(UTC)):
            return set()
        return set(self.watchlist.symbols_for("trades"))

    def in_hours(self, now: datetime) -> bool:
        """Whether `now` is within the hours the producer streams (the session, or the extended session)."""
        return self._in_hours(now)

    def _in_hours(self, now: datetime) -> bool:
        if calendar.is_open(now):
            return True
        if not self.settings.extended_hours:
            return False
        s = calendar.session(now.astimezone(calendar.NEW_YORK).date())
        return s is not None and s.open_utc - _EXTENDED_BEFORE_OPEN <= now < s.close_utc + _EXTENDED_AFTER_CLOSE

    def _sync_symbols(self) -> list[str]:
        if self.watchlist_file:
            self.watchlist_file.poll()
        wl = self.watchlist
        # The round visits symbols polled for quotes and, from the synthetic market, those whose trades it makes.
        wanted = set(wl.symbols_for("quotes")) | (set(wl.symbols_for("trades")) if self.synthetic_trades else set())
        symbols = [s for s in wl.active_symbols if s in wanted]
        for gone in set(self.next_due) - set(symbols):
            del self.next_due[gone]  # removed symbols stop at once
        now = self.clock.now()
        for new in symbols:
            self.next_due.setdefault(new, now)  # added symbols start at once
        SYMBOLS.set(len(symbols))
        return symbols

    def handle(self, symbol: str, quote: dict[str, Any], fetched_at: datetime) -> dict[str, Any] | None:
        """A quote to publish, or None (zero quote rejected, or stale t deduplicated)."""
        if not quote.get("c") and not quote.get("t"):
            ZERO_QUOTES.inc()
            self.stats.rejected["zero_quote"] = self.stats.rejected.get("zero_quote", 0) + 1
            log.warning("zero quote for %s rejected: Finnhub does not know the symbol", symbol)
            return None
        t = int(quote.get("t") or 0)
        if self.last_t.get(symbol) == t:
            DEDUPLICATED.inc()
            self.stats.deduplicated += 1
            return None
        return quote_message(symbol, quote, fetched_at, self.source.name)

    def poll_round(self) -> int:
        """Fetch every due symbol once, most overdue first; publish the batch; returns messages queued."""
        symbols = self._sync_symbols()
        now = self.clock.now()
        watchlist = self.watchlist
        due = sorted((s for s in symbols if self.next_due[s] <= now), key=lambda s: (self.next_due[s], s))
        messages: list[dict[str, Any]] = []
        trades: list[dict[str, Any]] = []
        for symbol in due:
            if self.stop.is_set() or symbol not in self.next_due:
                break
            options = watchlist.options_for(symbol)
            self.next_due[symbol] = now + timedelta(seconds=options.poll_interval_seconds)
            if "quotes" in options.sources:
                try:
                    quote = self.source.fetch(symbol, self.clock.now())
                except SourceStopped:
                    break  # stopping in the middle of a 429 storm or an outage: what was fetched is published
                self.stats.fetched += 1
                msg = self.handle(symbol, quote, self.clock.now())
                if msg is not None:
                    messages.append(msg)
            if self.synthetic_trades and "trades" in options.sources:
                trades.extend(self._synthetic_trades(symbol, now.replace(second=0, microsecond=0)))
        self._publish(messages)
        if trades:
            self.publisher.publish(self.settings.kafka.topic_trades, TRADE_V1, trades)
        self.stats.rounds += 1
        return len(messages)

    def _synthetic_trades(self, symbol: str, until: datetime) -> list[dict[str, Any]]:
        """The trades of every minute that finished by `until` and was not sent yet, each minute once.

        A round catches up on minutes it missed (rounds further apart than a minute); the first one
        of a symbol starts at the minute that just finished.
        """
        assert self.synthetic_trades is not None
        last = until - timedelta(minutes=1)
        minute = self._trade_minute.get(symbol, last - timedelta(minutes=1)) + timedelta(minutes=1)
        minute = max(minute, last - timedelta(minutes=_TRADE_CATCH_UP_MINUTES))
        out: list[dict[str, Any]] = []
        while minute <= last:
            out.extend(self.synthetic_trades.minute(symbol, minute))
            self._trade_minute[symbol] = minute
            minute += timedelta(minutes=1)
        return out

    def _finish_trades(self, end: datetime) -> None:
        """Before the session's watermark: the trades of its last minutes (up to its end) that no round sent."""
        if not self.synthetic_trades:
            return
        trades: list[dict[str, Any]] = []
        for symbol in sorted(self._trade_minute):
            trades.extend(self._synthetic_trades(symbol, end))
        if trades:
            self.publisher.publish(self.settings.kafka.topic_trades, TRADE_V1, trades)

    def _publish(self, messages: list[dict[str, Any]]) -> None:
        remaining = messages
        while True:
            try:
                result = self.publisher.publish(self.settings.kafka.topic_quotes, QUOTE_V1, remaining)
                break
            except ProducerQueueFull as exc:
                self._count(exc.result)
                remaining = exc.remaining  # what is queued stays queued: only the rest is retried
                log.error("%s; holding %d quotes and retrying", exc, len(remaining))
                self.alerter.incident(
                    "kafka-unreachable",
                    f":rotating_light: stockpipe producer: Kafka is not acknowledging ({exc}); quotes are held",
                    kind="producer",
                )
                if self.stop.is_set():
                    raise
        if "kafka-unreachable" in self.alerter.open_incidents:
            self.alerter.resolve("kafka-unreachable", ":white_check_mark: stockpipe producer: Kafka acknowledges again")
        self._count(result)
        published = {m["symbol"]: m for m in messages}
        for symbol, msg in published.items():
            self.last_t[symbol] = int(datetime.fromisoformat(msg["quote_ts"]).timestamp())

    def _count(self, result: PublishResult) -> None:
        for reason, count in result.rejected.items():
            self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + count
        self.stats.published += result.queued

    def _mark_session_end(self, now: datetime) -> None:
        """Once per session, after its close: a watermark in every partition of the stream topics."""
        day = now.astimezone(calendar.NEW_YORK).date()
        last = day if calendar.is_session(day) and not self._in_hours(now) and now >= _close(day) else None
        last = last or calendar.previous_session(day)
        if self._marked_close == last:
            return
        # The end of the hours the producer streams: the close, or with extended hours 20:00 New York,
        # so that the post-close files close the same day.
        close = _close(last) + (_EXTENDED_AFTER_CLOSE if self.settings.extended_hours else timedelta(0))
        self._finish_trades(close)
        for topic in (self.settings.kafka.topic_quotes, self.settings.kafka.topic_trades):
            self.publisher.watermark(topic, close)
        self._marked_close = last
        log.info("session %s closed: watermarks sent", last)

    def run(self) -> ProducerStats:
        replay = isinstance(self.clock, ReplayClock)
        try:
            while not self.stop.is_set():
                now = self.clock.now()
                if self._in_hours(now):
                    self.poll_round()
                    self.window_marks.mark_if_due(self.clock.now())
                    wait = (
                        min((d for d in self.next_due.values()), default=now + timedelta(seconds=1)) - self.clock.now()
                    )
                    sleep_s = max(wait.total_seconds(), 0.05 if not self.next_due else 0.0)
                    sleep_s = min(sleep_s, self.window_marks.until_next(self.clock.now()))
                else:
                    self._mark_session_end(now)
                    if replay:
                        break
                    sleep_s = min(60.0, (calendar.next_open(now) - now).total_seconds())
                self.publisher.poll()
                self.heartbeat.beat_if_due(
                    {
                        "market_open": self._in_hours(now),
                        "symbols": len(self.next_due),
                        "published": self.stats.published,
                    }
                )
                if not self.clock.sleep(sleep_s):
                    break
        finally:
            remaining = self.publisher.flush(30)
            if remaining:
                log.error("%d messages still unacknowledged at exit", remaining)
            self.heartbeat.close()
        return self.stats

    def close(self) -> None:
        """Stop the Kafka client (after run, and after the trade stream sharing it has stopped)."""
        if remaining := self.publisher.close():
            log.error("%d messages never acknowledged", remaining)


_EXTENDED_BEFORE_OPEN = timedelta(hours=5, minutes=30)  # 04:00 New York
_EXTENDED_AFTER_CLOSE = timedelta(hours=4)  # 20:00 New York
_TRADE_CATCH_UP_MINUTES = 24 * 60  # bounds the catch-up after a long stall


def _close(day: date) -> datetime:
    s = calendar.session(day)
    assert s is not None
    return s.close_utc


def build_producer(
    settings: ProducerSettings, stop: threading.Event, alerter: SlackAlerter | None = None
) -> QuoteProducer:
    if settings.replay_date is not None:
        s = calendar.session(settings.replay_date)
        assert s is not None
        clock: Clock = ReplayClock(s.open_utc, settings.replay_speed, stop)
    else:
        clock = WallClock(stop)
    source: QuoteSource
    if settings.source == "finnhub":
        assert settings.finnhub_token is not None
        token = settings.finnhub_token.get_secret_value()
        register_secret(token)
        budget = RateBudget(settings.calls_per_minute)
        source = FinnhubQuoteSource(token, budget, settings.finnhub_api_url, alerter=alerter, stop=stop)
    else:
        source = SyntheticQuoteSource()
    return QuoteProducer(settings, source, clock, stop, alerter=alerter)


def start_trade_stream(
    settings: ProducerSettings, producer: QuoteProducer, stop: threading.Event
) -> threading.Thread | None:
    """Finnhub's trade websocket on a thread of its own; it connects only while a watchlist asks for trades."""
    if settings.source != "finnhub" or settings.finnhub_token is None:
        return None  # synthetic trades are generated by the quote loop, on its clock
    stream = FinnhubTradeStream(
        settings.finnhub_ws_url,
        settings.finnhub_token.get_secret_value(),
        producer.trade_symbols,
        settings.kafka.topic_trades,
        producer.publisher,
        stop,
    )
    thread = threading.Thread(target=lambda: asyncio.run(stream.run()), name="finnhub-ws", daemon=True)
    thread.start()
    return thread


def run_producer(settings: ProducerSettings) -> ProducerStats:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    from stockpipe.stream.topics import ensure_pipeline_topics

    ensure_pipeline_topics(settings.kafka)
    url = settings.slack_webhook_url.get_secret_value() if settings.slack_webhook_url else None
    alerter = SlackAlerter(url, settings.alert_min_interval_s)
    producer = build_producer(settings, stop, alerter)
    trades = start_trade_stream(settings, producer, stop)

    def health() -> tuple[bool, dict[str, Any]]:
        return True, {"published": producer.stats.published, "symbols": len(producer.next_due)}

    server = start_observability(settings.metrics_port, health)
    log.info("producer started: source %s, %d symbols", settings.source, len(producer.watchlist.active_symbols))
    try:
        stats = producer.run()
    except KeyRejected as exc:
        log.error("%s: fix STOCKPIPE_FINNHUB_TOKEN; the producer stops", exc)
        alerter.incident("finnhub-key", f":rotating_light: stockpipe producer stopped: {exc}", kind="producer")
        raise
    finally:
        stop.set()
        if trades:
            trades.join(timeout=10)
        producer.close()
        if server:
            server.stop()
    log.info(
        "producer stopped: %d published, %d deduplicated, rejected %s",
        stats.published,
        stats.deduplicated,
        stats.rejected,
    )
    return stats
