"""The producer against a Finnhub that says 429 for a minute, and a websocket nobody asked for."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime

from stockpipe.alerts.slack import SlackAlerter
from stockpipe.marketdata.ratelimit import RateBudget
from stockpipe.settings import KafkaSettings
from stockpipe.stream.clock import ReplayClock
from stockpipe.stream.producer import ProducerSettings, QuoteProducer
from stockpipe.stream.sources import FinnhubQuoteSource
from stockpipe.stream.trades import FinnhubTradeStream
from stockpipe_dev.localservices.finnhub_standin import FinnhubStandin
from stockpipe_dev.localservices.finnhub_ws_standin import FinnhubWebsocketStandin
from stockpipe_dev.localservices.http_standin import Response, StandinRequest
from stockpipe_dev.localservices.slack_standin import SlackWebhookStandin
from tests.conftest import FREE_TOKEN
from tests.integration.stream.test_producer import read_topic

SESSION_OPEN = datetime(2025, 12, 2, 14, 30, tzinfo=UTC)
SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL"]


class StormyFinnhub(FinnhubStandin):
    """Finnhub answering every /quote with 429 and `Retry-After` for a while, then normally again."""

    def __init__(self, retry_after_s: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.retry_after_s = retry_after_s
        self.storm_until = 0.0
        self.storm_answers: list[float] = []

    def handle(self, request: StandinRequest) -> Response:
        if request.path == "/api/v1/quote" and time.monotonic() < self.storm_until:
            self.storm_answers.append(time.monotonic())
            body = {"error": "API limit reached. Please try again later. Remaining Limit: 0"}
            return 429, body, {"Retry-After": str(self.retry_after_s)}
        return super().handle(request)


def test_producer_rides_out_a_minute_of_429s_with_one_incident_and_its_recovery(
    kafka_topics: KafkaSettings, slack_standin: SlackWebhookStandin
) -> None:
    with StormyFinnhub(retry_after_s=3, free_tokens=[FREE_TOKEN]) as finnhub:
        assert isinstance(finnhub, StormyFinnhub)
        stop = threading.Event()
        alerter = SlackAlerter(slack_standin.webhook_url(), min_interval_s=1.0)
        source = FinnhubQuoteSource(FREE_TOKEN, RateBudget(600), finnhub.api_url, alerter=alerter, stop=stop)
        settings = ProducerSettings(
            kafka=kafka_topics,
            source="finnhub",
            finnhub_token=FREE_TOKEN,  # type: ignore[arg-type]
            finnhub_api_url=finnhub.api_url,
            metrics_port=0,
            symbols=SYMBOLS,
            poll_interval_seconds=5,
        )
        clock = ReplayClock(SESSION_OPEN, 1.0, stop)
        finnhub.clock = clock.now
        producer = QuoteProducer(settings, source, clock, stop)
        finnhub.storm_until = time.monotonic() + 60.0
        errors: list[BaseException] = []

        def run() -> None:
            try:
                producer.run()
            except BaseException as exc:  # the test reports whatever escaped
                errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and thread.is_alive():
            after_storm = time.monotonic() > finnhub.storm_until + 1
            if after_storm and len(finnhub.symbols_requested) == len(SYMBOLS) and producer.stats.published >= 10:
                break
            time.sleep(0.5)
        stop.set()
        thread.join(30)

    assert not errors, errors  # no exit: the producer kept going through the storm
    assert not thread.is_alive()
    # Growing back-off, never shorter than Retry-After: a few calls in the minute, not hundreds.
    gaps = [b - a for a, b in zip(finnhub.storm_answers, finnhub.storm_answers[1:], strict=False)]
    assert 3 <= len(finnhub.storm_answers) <= 12, finnhub.storm_answers
    assert min(gaps) >= 3.0 - 0.2, gaps
    assert max(gaps) > 2 * min(gaps), gaps
    # No symbol lost: every one was fetched and published after the storm.
    quotes = read_topic(kafka_topics, kafka_topics.topic_quotes)
    assert {q["symbol"] for q in quotes} == set(SYMBOLS)
    # One incident, one recovery.
    texts = slack_standin.texts()
    assert len(texts) == 2, texts
    assert "429" in texts[0]
    assert "answers again" in texts[1]
    assert FREE_TOKEN not in " ".join(texts)


def test_the_websocket_is_not_opened_while_no_watchlist_asks_for_trades(kafka_topics: KafkaSettings) -> None:
    ws = FinnhubWebsocketStandin(tokens={FREE_TOKEN}, interval_s=0.05).start()
    stop = threading.Event()
    wanted: set[str] = set()
    asked = [0]  # how often the stream has looked at its watchlist: the event a negative check waits for
    from stockpipe.stream.publisher import Publisher

    def watchlist() -> set[str]:
        asked[0] += 1
        return set(wanted)

    def after_more_asks(count: int) -> None:
        target, deadline = asked[0] + count, time.monotonic() + 30
        while asked[0] < target and time.monotonic() < deadline:
            time.sleep(0.05)
        assert asked[0] >= target, "the stream stopped looking at its watchlist"

    publisher = Publisher(kafka_topics)
    stream = FinnhubTradeStream(
        ws.url, FREE_TOKEN, watchlist, kafka_topics.topic_trades, publisher, stop, 0.1, idle_check_s=0.1
    )
    thread = threading.Thread(target=lambda: asyncio.run(stream.run()), daemon=True)
    thread.start()
    try:
        after_more_asks(5)  # five looks at an empty watchlist
        assert ws.connections == 0  # the URL carries the token: no reason to open it
        wanted.add("AAPL")  # a watchlist asks for trades now
        deadline = time.monotonic() + 20
        while stream.received == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ws.connections == 1
        assert stream.received > 0
        wanted.clear()  # and no longer: the connection closes and stays closed
        after_more_asks(10)
        assert ws.connections == 1
    finally:
        stop.set()
        thread.join(10)
        ws.stop()
        publisher.flush()
