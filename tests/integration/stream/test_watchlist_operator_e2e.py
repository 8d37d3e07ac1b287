"""End to end: kubectl-style edits of a TickerWatchlist change what a running producer streams.

The real operator runs against the in-memory API server, the ConfigMap mirror plays the kubelet
(ConfigMap volume -> file), and a running producer (local Kafka, Finnhub stand-in) watches the file.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stockpipe.marketdata.ratelimit import RateBudget
from stockpipe.operator.settings import OperatorSettings
from stockpipe.settings import KafkaSettings
from stockpipe.stream.clock import ReplayClock
from stockpipe.stream.producer import ProducerSettings, QuoteProducer
from stockpipe.stream.sources import FinnhubQuoteSource
from stockpipe_dev.localservices.finnhub_standin import FinnhubStandin
from stockpipe_dev.localservices.process import free_port
from tests.conftest import FREE_TOKEN
from tests.integration.operator.kube_emulator import ApiServerThread, Kube, wait_for
from tests.integration.operator.operator_harness import CONFIGMAP, NAMESPACE, TW_PATH, RunningOperator, build_apiserver
from tests.integration.operator.test_configmap_mirror import Mirror
from tests.integration.stream.test_producer import read_topic

pytestmark = pytest.mark.timeout(180)


def symbols_since(kafka: KafkaSettings, since: datetime) -> set[str]:
    return {
        str(m["symbol"])
        for m in read_topic(kafka, kafka.topic_quotes)
        if datetime.fromisoformat(str(m["fetched_at"])) >= since
    }


def test_editing_the_watchlist_starts_and_stops_symbols_in_kafka(
    kafka_topics: KafkaSettings, finnhub_standin: FinnhubStandin, tmp_path: Path
) -> None:
    watchlist_file = tmp_path / "config" / "watchlist.json"
    finnhub_standin.per_minute = 100_000
    with ApiServerThread(build_apiserver()) as apiserver:
        kube = Kube(apiserver.url)
        operator = RunningOperator(
            OperatorSettings(
                namespace=NAMESPACE,
                configmap_name=CONFIGMAP,
                resync_seconds=1.0,
                liveness_host="127.0.0.1",
                liveness_port=free_port(),
            ),
            apiserver.url,
        ).start()
        mirror = Mirror(apiserver.url, watchlist_file)
        mirror.thread.start()
        stop = threading.Event()
        producer_thread: threading.Thread | None = None
        try:
            kube.create(
                TW_PATH,
                {
                    "apiVersion": "stockpipe.io/v1alpha1",
                    "kind": "TickerWatchlist",
                    "metadata": {"name": "demo"},
                    "spec": {"symbols": ["AAPL"], "pollIntervalSeconds": 5},
                },
            )
            wait_for("the mirrored file", lambda: watchlist_file.exists(), timeout=30)

            # A live producer on a session clock running at 60x: a simulated minute each real second.
            settings = ProducerSettings(
                kafka=kafka_topics,
                source="finnhub",
                finnhub_token=FREE_TOKEN,  # type: ignore[arg-type]
                finnhub_api_url=finnhub_standin.api_url,
                watchlist_file=watchlist_file,
                metrics_port=0,
            )
            clock = ReplayClock(datetime(2025, 12, 3, 14, 30, tzinfo=UTC), 60.0, stop)
            finnhub_standin.clock = clock.now
            source = FinnhubQuoteSource(FREE_TOKEN, RateBudget(100_000, per_second=10_000), finnhub_standin.api_url)
            producer = QuoteProducer(settings, source, clock, stop)
            producer_thread = threading.Thread(target=producer.run, daemon=True)
            producer_thread.start()
            wait_for("AAPL quotes", lambda: "AAPL" in symbols_since(kafka_topics, datetime(2000, 1, 1, tzinfo=UTC)))

            # kubectl edit tw demo: add MSFT.
            kube.merge_patch(f"{TW_PATH}/demo", {"spec": {"symbols": ["AAPL", "MSFT"]}})
            wait_for("MSFT quotes", lambda: "MSFT" in symbols_since(kafka_topics, datetime(2000, 1, 1, tzinfo=UTC)))

            # kubectl edit tw demo: remove AAPL. Once the producer has the new file, AAPL stops.
            kube.merge_patch(f"{TW_PATH}/demo", {"spec": {"symbols": ["MSFT"]}})
            wait_for("the producer to drop AAPL", lambda: "AAPL" not in producer.next_due, timeout=30)
            removed_at = clock.now()
            time.sleep(3)  # three simulated minutes of polling
            assert symbols_since(kafka_topics, removed_at) == {"MSFT"}
            assert producer.watchlist_file is not None
            assert producer.watchlist_file.reloads >= 2
        finally:
            stop.set()
            if producer_thread:
                producer_thread.join(30)
            mirror.close()
            operator.shutdown()
