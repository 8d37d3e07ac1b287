"""No secret leaves the pipeline: every log line, Slack message and file of a run is grepped for them.

The run: the producer against the Finnhub stand-in (a dead endpoint first, whose errors carry URLs;
429s; a refused key), the consumer as its own process with Slack alerts on (bad messages push its
dead-letter rate over the threshold), the Snowflake key and password in every process's environment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer

from stockpipe.alerts.slack import SlackAlerter
from stockpipe.logs import setup_logging
from stockpipe.marketdata.ratelimit import RateBudget
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.clock import ReplayClock
from stockpipe.stream.producer import ProducerSettings, QuoteProducer
from stockpipe.stream.publisher import Publisher
from stockpipe.stream.sources import FinnhubQuoteSource, KeyRejected
from stockpipe_dev.localservices.finnhub_standin import FinnhubStandin
from stockpipe_dev.localservices.slack_standin import SlackWebhookStandin

TOKEN = "fh-secret-token-4c2b9a71"
WEBHOOK_PATH = "/services/T0SECRET/B0SECRET/xoxb-hook-8d1e"
SNOWFLAKE_KEY = "-----BEGIN PRIVATE KEY-----MIIEsnowflakesecret77-----END PRIVATE KEY-----"
SNOWFLAKE_PASSWORD = "sf-password-secret-0e93"
SECRETS = [TOKEN, "xoxb-hook-8d1e", "T0SECRET/B0SECRET", "MIIEsnowflakesecret77", SNOWFLAKE_PASSWORD]
SESSION_OPEN = datetime(2025, 12, 2, 14, 30, tzinfo=UTC)


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


@pytest.mark.usefixtures("restore_logging")
def test_no_log_line_slack_message_or_file_holds_a_secret(
    kafka_topics: KafkaSettings,
    file_lake: LakeSettings,
    slack_standin: SlackWebhookStandin,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    webhook = slack_standin.webhook_url(WEBHOOK_PATH)
    monkeypatch.setenv("STOCKPIPE_WAREHOUSE__SNOWFLAKE__PASSWORD", SNOWFLAKE_PASSWORD)
    monkeypatch.setenv("DBT_ENV_SECRET_SNOWFLAKE_PRIVATE_KEY", SNOWFLAKE_KEY)
    setup_logging("DEBUG", json_logs=True)  # DEBUG: libraries that log URLs would show them
    stop = threading.Event()
    alerter = SlackAlerter(webhook, min_interval_s=0.1)
    settings = ProducerSettings(
        kafka=kafka_topics,
        source="finnhub",
        finnhub_token=TOKEN,  # type: ignore[arg-type]
        metrics_port=0,
        symbols=["AAPL", "MSFT"],
    )
    with FinnhubStandin(free_tokens=[TOKEN], per_minute=3) as finnhub:
        # A dead endpoint: connection errors print the URL; then 429s past the stand-in's budget.
        dead = FinnhubQuoteSource(TOKEN, RateBudget(6000), "http://127.0.0.1:9/api/v1", alerter=alerter, stop=stop)
        producer = QuoteProducer(settings, dead, ReplayClock(SESSION_OPEN, 1e9, stop), stop, alerter=alerter)
        threading.Timer(4.0, stop.set).start()
        producer.poll_round()
        stop.clear()
        live = FinnhubQuoteSource(TOKEN, RateBudget(6000), finnhub.api_url, alerter=alerter, stop=stop)
        for symbol in ("AAPL", "MSFT", "NVDA"):
            live.fetch(symbol, SESSION_OPEN)
        threading.Timer(5.0, stop.set).start()
        try:
            live.fetch("AMZN", SESSION_OPEN)  # over the budget: 429s until stopped
        except Exception as exc:  # whatever ends the wait, its text is checked
            logging_line = f"{type(exc).__name__}: {exc}"
            assert not leaks(logging_line)
        finnhub.free_tokens.discard(TOKEN)  # the key is refused now
        stop.clear()
        refused = FinnhubQuoteSource(TOKEN, RateBudget(6000), finnhub.api_url, alerter=alerter, stop=stop)
        with pytest.raises(KeyRejected) as refusal:
            refused.fetch("AAPL", SESSION_OPEN)
        alerter.incident("finnhub-key", f"stockpipe producer stopped: {refusal.value}")

    # The consumer, as a process, with alerts on: half of what it reads is bad.
    bad = Producer({"bootstrap.servers": kafka_topics.bootstrap_servers})
    for i in range(150):
        bad.produce(kafka_topics.topic_quotes, b"null" if i % 2 else b"[1, 2]", key=b"AAPL")
    assert bad.flush(20) == 0
    Publisher(kafka_topics).flush()
    log = tmp_path / "consumer.log"
    env = {
        **os.environ,
        "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS": kafka_topics.bootstrap_servers,
        "STOCKPIPE_KAFKA__TOPIC_QUOTES": kafka_topics.topic_quotes,
        "STOCKPIPE_KAFKA__TOPIC_TRADES": kafka_topics.topic_trades,
        "STOCKPIPE_KAFKA__TOPIC_DLQ": kafka_topics.topic_dlq,
        "STOCKPIPE_KAFKA__TOPIC_HEARTBEATS": kafka_topics.topic_heartbeats,
        "STOCKPIPE_LAKE__URL": file_lake.url,
        "STOCKPIPE_GROUP_ID": "secrets",
        "STOCKPIPE_METRICS_PORT": "0",
        "STOCKPIPE_HEARTBEAT_SECONDS": "0.5",
        "STOCKPIPE_DLQ_WINDOW_SECONDS": "1",
        "STOCKPIPE_SLACK_WEBHOOK_URL": webhook,
        "STOCKPIPE_FINNHUB_TOKEN": TOKEN,
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "stockpipe.cli", "consumer"], env=env, stdout=out, stderr=out)
    lake_root = Path(file_lake.url.removeprefix("file://"))

    def alerted_and_written() -> bool:
        # The alert and a dead-letter object in the lake (written once the dead letters' window closes).
        alerted = any("dead-letter" in t for t in slack_standin.texts())
        return alerted and any(lake_root.glob("raw/dlq/**/*.parquet"))

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not alerted_and_written():
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, log.read_text()[-2000:]

    # Something was said, everywhere we look ...
    out, err = capfd.readouterr()
    posted = json.dumps([m["payload"] for m in slack_standin.messages])  # what was said (not where)
    assert "429" in posted
    assert "dead-letter" in posted
    assert "refused the API key" in posted
    consumer_log = log.read_text()
    assert "dead letter" in consumer_log
    assert "retrying" in err
    # ... and no secret anywhere: logs, Slack, every file the run wrote (the lake: objects and dead letters).
    assert leaks(out + err) == []
    assert leaks(consumer_log) == []
    assert leaks(posted) == []
    written = [p for p in lake_root.rglob("*") if p.is_file()]
    assert written
    for path in written:
        assert leaks(path.read_bytes().decode("latin-1")) == [], path
