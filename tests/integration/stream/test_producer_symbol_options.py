"""The producer applies each symbol's own options from the operator's file: interval and sources per symbol."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from stockpipe.contracts.watchlist import SymbolOptions, Watchlist
from stockpipe.settings import KafkaSettings
from stockpipe.stream.clock import ReplayClock
from stockpipe.stream.producer import ProducerSettings, QuoteProducer
from stockpipe.stream.sources import SyntheticQuoteSource
from tests.integration.stream.test_producer import SESSION_OPEN, read_topic


def test_each_symbol_is_polled_at_its_own_interval_from_its_own_sources(
    kafka_topics: KafkaSettings, tmp_path: Path
) -> None:
    path = tmp_path / "watchlist.json"
    watchlist = Watchlist(
        symbols=["AAPL", "MSFT", "TSLA"],
        poll_interval_seconds=15,
        sources=["quotes", "trades"],
        symbol_options={
            "AAPL": SymbolOptions(poll_interval_seconds=15, sources=["quotes"]),
            "MSFT": SymbolOptions(poll_interval_seconds=60, sources=["quotes", "trades"]),
            "TSLA": SymbolOptions(poll_interval_seconds=15, sources=["trades"]),  # a trades-only list's symbol
        },
    )
    path.write_text(watchlist.to_json())
    stop = threading.Event()
    settings = ProducerSettings(kafka=kafka_topics, watchlist_file=path, metrics_port=0)
    producer = QuoteProducer(settings, SyntheticQuoteSource(), ReplayClock(SESSION_OPEN, 1e9, stop), stop)
    for _ in range(4 * 10):  # ten simulated minutes, a round every 15 s
        producer.poll_round()
        producer.clock.sleep(15)
    producer.publisher.flush()

    quotes = Counter(str(m["symbol"]) for m in read_topic(kafka_topics, kafka_topics.topic_quotes))
    trades = Counter(str(m["symbol"]) for m in read_topic(kafka_topics, kafka_topics.topic_trades))
    # AAPL: its quote's t moves each minute, polled every 15 s; MSFT: polled each minute. TSLA: never polled.
    assert quotes == {"AAPL": 10, "MSFT": 10}
    assert producer.stats.fetched == 40 + 10
    assert set(trades) == {"MSFT", "TSLA"}
