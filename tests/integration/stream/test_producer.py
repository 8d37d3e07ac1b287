"""The producer against the Finnhub stand-ins and the real local Kafka."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from stockpipe.contracts.watchlist import Watchlist
from stockpipe.logs import setup_logging
from stockpipe.marketdata.ratelimit import RateBudget
from stockpipe.settings import KafkaSettings
from stockpipe.stream.clock import ReplayClock
from stockpipe.stream.producer import ProducerSettings, QuoteProducer
from stockpipe.stream.sources import FinnhubQuoteSource
from stockpipe.stream.trades import FinnhubTradeStream
from stockpipe_dev.localservices.finnhub_standin import FinnhubStandin
from stockpipe_dev.localservices.finnhub_ws_standin import FinnhubWebsocketStandin
from tests.conftest import FREE_TOKEN

SESSION_OPEN = datetime(2025, 12, 2, 14, 30, tzinfo=UTC)


def read_topic(kafka: KafkaSettings, topic: str) -> list[dict[str, object]]:
    """Every message of a topic up to its end offsets, read by partition assignment (no group join)."""
    consumer = Consumer(
        {"bootstrap.servers": kafka.bootstrap_servers, "group.id": "reader", "enable.auto.commit": False}
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    out: list[dict[str, object]] = []
    seen = dict.fromkeys(partitions, 0)
    deadline = time.monotonic() + 30
    while any(seen[p] < ends[p] for p in partitions) and time.monotonic() < deadline:
        for m in consumer.consume(1000, 0.5):
            if m.error() is None:
                seen[m.partition()] = m.offset() + 1
                value = orjson.loads(m.value())
                if value.get("schema") != "watermark.v1":
                    out.append(value)
    consumer.close()
    return out


def finnhub_producer(
    kafka: KafkaSettings, standin: FinnhubStandin, budget: RateBudget, stop: threading.Event, speed: float, **kw: object
) -> QuoteProducer:
    settings = ProducerSettings(
        kafka=kafka,
        source="finnhub",
        finnhub_token=FREE_TOKEN,  # type: ignore[arg-type]
        finnhub_api_url=standin.api_url,
        metrics_port=0,
        **kw,
    )  # type: ignore[arg-type]
    clock = ReplayClock(SESSION_OPEN, speed, stop)
    standin.clock = clock.now  # Finnhub's clock and ours agree: quotes move with simulated time
    source = FinnhubQuoteSource(FREE_TOKEN, budget, standin.api_url)
    return QuoteProducer(settings, source, clock, stop)


def test_rate_budget_is_never_exceeded_against_finnhub(
    kafka_topics: KafkaSettings, finnhub_standin: FinnhubStandin
) -> None:
    """100 symbols every 5 s want 1,200 calls a minute; the budget is 120. Run a little over a minute."""
    finnhub_standin.per_minute = 120
    stop = threading.Event()
    symbols = [f"S{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(100)]
    budget = RateBudget(per_minute=120)
    producer = finnhub_producer(
        kafka_topics, finnhub_standin, budget, stop, speed=1.0, symbols=symbols, poll_interval_seconds=5
    )
    timer = threading.Timer(65.0, stop.set)
    timer.start()
    producer.run()
    stats = finnhub_standin.stats()
    assert stats["http_429"] == {}
    assert finnhub_standin.max_calls_in_any_minute(FREE_TOKEN) <= 120
    assert budget.calls >= 0.9 * 120 * 65 / 60  # and the budget is used, not wasted
    # Fair rotation: every symbol was asked for, none more than twice as often as another.
    asked = [stats["symbols_requested"].get(s, 0) for s in symbols]  # type: ignore[attr-defined]
    assert min(asked) >= 1
    assert max(asked) <= 2 * min(asked)


def test_stale_quotes_are_not_republished_and_zero_quotes_are_rejected(
    kafka_topics: KafkaSettings, finnhub_standin: FinnhubStandin
) -> None:
    finnhub_standin.per_minute = 100_000
    finnhub_standin.stale_symbols = {"IBM"}
    stop = threading.Event()
    producer = finnhub_producer(
        kafka_topics,
        finnhub_standin,
        RateBudget(100_000, per_second=10_000),
        stop,
        speed=1e9,
        symbols=["AAPL", "IBM", "ZZZZ"],
        poll_interval_seconds=15,
    )
    for _ in range(4 * 30):  # 30 simulated minutes, a poll every 15 s
        producer.poll_round()
        producer.clock.sleep(15)
    producer.publisher.flush()
    messages = read_topic(kafka_topics, kafka_topics.topic_quotes)
    by_symbol: dict[str, int] = {}
    for m in messages:
        by_symbol[str(m["symbol"])] = by_symbol.get(str(m["symbol"]), 0) + 1
    assert by_symbol == {"AAPL": 30, "IBM": 1}  # AAPL's t moves each minute; IBM's never does
    assert producer.stats.deduplicated == 120 - 30 + 120 - 1
    assert producer.stats.rejected == {"zero_quote": 120}


def test_watchlist_file_reload_starts_and_stops_symbols(kafka_topics: KafkaSettings, tmp_path: Path) -> None:
    path = tmp_path / "watchlist.json"
    path.write_text(Watchlist(symbols=["AAPL", "MSFT"], pollIntervalSeconds=60).to_json())
    stop = threading.Event()
    settings = ProducerSettings(kafka=kafka_topics, watchlist_file=path, metrics_port=0)
    from stockpipe.stream.sources import SyntheticQuoteSource

    producer = QuoteProducer(settings, SyntheticQuoteSource(), ReplayClock(SESSION_OPEN, 1e9, stop), stop)
    for _ in range(10):
        producer.poll_round()
        producer.clock.sleep(60)
    change_at = producer.clock.now()
    path.write_text(Watchlist(symbols=["MSFT", "NVDA"], pollIntervalSeconds=60).to_json())
    for _ in range(10):
        producer.poll_round()
        producer.clock.sleep(60)
    producer.publisher.flush()
    assert producer.watchlist_file is not None
    assert producer.watchlist_file.reloads == 1
    messages = read_topic(kafka_topics, kafka_topics.topic_quotes)
    fetched = {
        s: [datetime.fromisoformat(str(m["fetched_at"])) for m in messages if m["symbol"] == s]
        for s in ("AAPL", "MSFT", "NVDA")
    }
    assert len(fetched["MSFT"]) == 20
    assert max(fetched["AAPL"]) < change_at
    assert min(fetched["NVDA"]) >= change_at
    assert len(fetched["NVDA"]) == 10
    # A broken edit keeps the last good watchlist.
    path.write_text('{"symbols": ["lowercase"]}')
    assert producer.watchlist_file.poll() is False
    assert producer.watchlist.symbols == ["MSFT", "NVDA"]


@pytest.mark.usefixtures("restore_logging")
def test_token_never_reaches_the_output(
    kafka_topics: KafkaSettings, capfd: pytest.CaptureFixture[str], finnhub_standin: FinnhubStandin
) -> None:
    secret = "tok-do-not-leak-9f8e7d"
    setup_logging("DEBUG", json_logs=True)
    finnhub_standin.free_tokens.add(secret)
    stop = threading.Event()
    settings = ProducerSettings(
        kafka=kafka_topics,
        source="finnhub",
        finnhub_token=secret,  # type: ignore[arg-type]
        finnhub_api_url="http://127.0.0.1:9/api/v1",
        metrics_port=0,
    )
    # First a dead endpoint (connection errors print the URL), retried until the producer stops.
    dead = FinnhubQuoteSource(secret, RateBudget(6000), "http://127.0.0.1:9/api/v1", stop=stop)
    producer = QuoteProducer(settings, dead, ReplayClock(SESSION_OPEN, 1e9, stop), stop)
    timer = threading.Timer(4.0, stop.set)
    timer.start()
    assert producer.poll_round() == 0  # rode the outage out until stopped, no exception
    assert producer.stats.fetched == 0
    live = FinnhubQuoteSource(secret, RateBudget(6000), finnhub_standin.api_url)
    assert live.fetch("AAPL", SESSION_OPEN)["c"] > 0
    logging.getLogger("test").info("url was %s", f"{finnhub_standin.api_url}/quote?symbol=AAPL&token={secret}")
    out, err = capfd.readouterr()
    assert "token=***" in err
    assert secret not in out + err


def test_websocket_trades_reconnect_and_resubscribe(kafka_topics: KafkaSettings) -> None:
    ws = FinnhubWebsocketStandin(tokens={FREE_TOKEN}, interval_s=0.05, drop_after=15).start()
    stop = threading.Event()
    settings = ProducerSettings(kafka=kafka_topics, metrics_port=0, symbols=["AAPL", "MSFT"], sources=["trades"])
    from stockpipe.stream.sources import SyntheticQuoteSource

    producer = QuoteProducer(settings, SyntheticQuoteSource(), ReplayClock(SESSION_OPEN, 1e9, stop), stop)
    stream = FinnhubTradeStream(
        ws.url, FREE_TOKEN, lambda: {"AAPL", "MSFT"}, kafka_topics.topic_trades, producer.publisher, stop, 0.1
    )
    import asyncio

    thread = threading.Thread(target=lambda: asyncio.run(stream.run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while ws.connections < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    stop.set()
    thread.join(timeout=10)
    ws.stop()
    producer.publisher.flush()
    assert ws.connections >= 2  # dropped by the server, then reconnected
    subscribed_per_connection = {c for c, kind, _ in ws.subscribe_log if kind == "subscribe"}
    assert subscribed_per_connection >= {1, 2}  # resubscribed after the reconnect
    trades = read_topic(kafka_topics, kafka_topics.topic_trades)
    assert {t["symbol"] for t in trades} == {"AAPL", "MSFT"}
    assert len(trades) == stream.received
    assert {t["seq"] for t in trades} == {0, 1}
    assert all(t["schema"] == "trade.v1" and t["source"] == "finnhub_ws" for t in trades)
