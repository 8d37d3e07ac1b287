"""`make chaos`, the consumer's sinks refusing or away: nothing lost, no restart.

- dlq_refused: the dead-letter topic refuses dead letters for a while (its max.message.bytes lowered
  below their size: the broker answers MESSAGE_TOO_LARGE, as for a letter over the chart's 2 MiB or
  a refused ACL), then takes them again. Every bad message ends in the dead-letter topic, none in
  the lake; every good one in the lake exactly once; one Slack incident and one recovery.
- lake_outage_no_restart: the object store stopped for `outage_s` while the stream goes on, with
  the consumer's /healthz polled as a liveness probe would: it never fails (a known outage within
  the retry budget), one incident and one recovery, the same process from start to end.
Each is counted in the lake and in bronze like the first wave (`stockpipe_dev.bench.chaos`).
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported without __all__
    AdminClient,
    ConfigResource,
    ResourceType,
)
from rich.console import Console

from stockpipe.lake.store import Lake
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.consumer.settings import ConsumerSettings
from stockpipe.stream.topics import DLQ_MAX_MESSAGE_BYTES, isolated_topics
from stockpipe_dev.bench.chaos_common import ConsumerProcess, Scenario, counted, produce, wait_for_rows
from stockpipe_dev.bench.chaos_faults import produce_paced, s3_settings
from stockpipe_dev.bench.stream import quote_messages
from stockpipe_dev.localservices.kafka import KafkaBroker
from stockpipe_dev.localservices.minio import MinioServer
from stockpipe_dev.localservices.process import free_port, terminate
from stockpipe_dev.localservices.slack_standin import SlackWebhookStandin

console = Console(stderr=True)

# The chart's liveness settings for the consumer: its stall limit (the setting's default, which the chart
# keeps) and the probe of `stockpipe.httpProbes` in charts/stockpipe/templates/_helpers.tpl.
CHART_STALL_S = float(ConsumerSettings.model_fields["stall_seconds"].default)
CHART_ALERT_AFTER_RETRIES = int(ConsumerSettings.model_fields["alert_after_retries"].default)
CHART_PROBE_PERIOD_S = 20.0
CHART_PROBE_FAILURES = 3


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} after {timeout_s:.0f} s")
        time.sleep(0.5)


def set_dlq_limit(kafka: KafkaSettings, max_bytes: int) -> None:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    resource = ConfigResource(ResourceType.TOPIC, kafka.topic_dlq, set_config={"max.message.bytes": str(max_bytes)})
    for future in admin.alter_configs([resource]).values():
        future.result(timeout=30)


def dlq_sources(kafka: KafkaSettings) -> list[tuple[int, int]]:
    """(source partition, source offset) of every dead letter in the DLQ topic, duplicates included."""
    reader = Consumer(
        {"bootstrap.servers": kafka.bootstrap_servers, "group.id": "chaos-dlq-reader", "enable.auto.commit": False}
    )
    try:
        meta = reader.list_topics(kafka.topic_dlq, timeout=10).topics[kafka.topic_dlq]
        found: list[tuple[int, int]] = []
        for p in meta.partitions:
            end = reader.get_watermark_offsets(TopicPartition(kafka.topic_dlq, p), timeout=10)[1]
            reader.assign([TopicPartition(kafka.topic_dlq, p, 0)])
            position = 0
            while position < end:
                msg = reader.poll(5)
                if msg is None or msg.error():
                    continue
                position = (msg.offset() or 0) + 1
                value = orjson.loads(msg.value() or b"{}")
                if value.get("schema") == "dlq.v1" and value.get("source_topic") == kafka.topic_quotes:
                    found.append((int(value["source_partition"]), int(value["source_offset"])))
        return found
    finally:
        reader.close()


def produce_bad(kafka: KafkaSettings, count: int, size: int = 4096) -> set[tuple[int, int]]:
    """`count` messages that fail the contract, each bigger than the lowered limit: their (partition, offset)."""
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "linger.ms": 5})
    where: set[tuple[int, int]] = set()

    def delivered(err: KafkaError | None, msg: Message) -> None:
        if err is None:
            where.add((msg.partition() or 0, msg.offset() or 0))

    for i in range(count):
        value = orjson.dumps({"schema": "quote.v1", "symbol": f"BAD{i}", "pad": "x" * size})
        producer.produce(kafka.topic_quotes, value, key=f"BAD{i}".encode(), on_delivery=delivered)
    if producer.flush(60):
        raise RuntimeError("bad messages unacknowledged after 60 s")
    return where


def dlq_refused(
    broker: KafkaBroker, work: Path, records: int, rng: random.Random, refuse_s: float = 30.0, bad: int = 60
) -> Scenario:
    """The dead-letter topic refuses dead letters for refuse_s, then takes them again."""
    kafka = isolated_topics(broker.bootstrap, f"dlqrefused{rng.randrange(10**6)}")
    lake_settings = LakeSettings(url=f"file://{work / 'lake-dlqrefused'}")
    lake = Lake(lake_settings)
    with SlackWebhookStandin() as slack:
        assert isinstance(slack, SlackWebhookStandin)
        consumer = ConsumerProcess(kafka, lake_settings, work / "consumer-dlqrefused.log")
        consumer.env["STOCKPIPE_SLACK_WEBHOOK_URL"] = slack.webhook_url()
        consumer.env["STOCKPIPE_ALERT_MIN_INTERVAL_S"] = "1"
        consumer.env["STOCKPIPE_MAX_RECORDS_PER_FILE"] = str(max(100, records // 40))
        set_dlq_limit(kafka, 1024)  # the dead letters below are bigger: refused; watermarks still fit
        consumer.start()
        messages = quote_messages(records)
        half = len(messages) // 2
        bad_at = produce_bad(kafka, bad // 2)
        produced = produce_paced(kafka, messages[:half], 2.0, chunks=5)
        bad_at |= produce_bad(kafka, bad - bad // 2)
        _wait(lambda: any("refuses dead letters" in t for t in slack.texts()), 120, "refusal incident")
        console.print(f"  the dead-letter topic refuses dead letters for {refuse_s:.0f} s while the stream goes on")
        produced += produce(kafka, messages[half:])
        time.sleep(refuse_s)  # the fault's duration: the refusal goes on while the stream arrives
        set_dlq_limit(kafka, DLQ_MAX_MESSAGE_BYTES)
        wait_for_rows(lake, produced, 300, records)
        _wait(lambda: set(dlq_sources(kafka)) >= bad_at, 120, "dead letters for every bad message")
        code = consumer.stop()
        letters = dlq_sources(kafka)
        log = (work / "consumer-dlqrefused.log").read_text(errors="replace")
        refusals = log.count("refused (")
        incidents = [t for t in slack.texts() if "refuses dead letters" in t]
        recoveries = [t for t in slack.texts() if "takes dead letters again" in t]
        missing = bad_at - set(letters)
        scenario = counted(
            f"dead-letter topic refusing dead letters for {refuse_s:.0f} s",
            produced,
            lake,
            work,
            f"{len(bad_at)} bad messages: {len(bad_at) - len(missing)} in the DLQ ({len(letters) - len(set(letters))}"
            f" sent twice), {refusals} refusals logged, Slack incidents {len(incidents)}, recoveries"
            f" {len(recoveries)}, exit code {code}",
        )
        if missing or len(incidents) != 1 or len(recoveries) != 1 or code != 0 or refusals == 0:
            scenario.detail = "FAILED: " + scenario.detail
        return scenario


class HealthProbe:
    """Polls /healthz every period_s, as the kubelet's liveness probe does; counts failures and restarts due."""

    def __init__(self, url: str, period_s: float, failure_threshold: int) -> None:
        self.url, self.period_s, self.threshold = url, period_s, failure_threshold
        self.probes = self.failures = self.restarts_due = 0
        self.worst: dict[str, object] = {}
        self._in_a_row = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as resp:  # noqa: S310 - a local endpoint
                    ok, body = resp.status == 200, resp.read()
            except urllib.error.HTTPError as exc:
                ok, body = False, exc.read()
            except OSError:
                continue  # not listening yet
            self.probes += 1
            if ok:
                self._in_a_row = 0
                continue
            self.failures += 1
            self._in_a_row += 1
            self.worst = json.loads(body or b"{}")
            if self._in_a_row == self.threshold:
                self.restarts_due += 1


def lake_outage_no_restart(
    broker: KafkaBroker,
    work: Path,
    records: int,
    rng: random.Random,
    *,
    outage_s: float,
    stall_s: float = CHART_STALL_S,
    probe_period_s: float = CHART_PROBE_PERIOD_S,
    alert_after_retries: int = CHART_ALERT_AFTER_RETRIES,
) -> Scenario:
    """The object store away for outage_s (shorter than the retry budget); /healthz polled throughout.

    By default under the chart's settings: the consumer's stall limit, its liveness probe's period and
    failure threshold. A test scales the stall limit down with a shorter outage: one several stall limits
    long would have failed health before liveness knew of outages. It scales the failed writes that open an
    incident down too: a write to an unreachable store fails only after the S3 client's own connect retries
    (about 13 s here), so a 30 s outage sees two or three of them, not surely the chart's three.
    """
    kafka = isolated_topics(broker.bootstrap, f"lakeout{rng.randrange(10**6)}")
    port = free_port()
    minio = MinioServer(work / "minio-lakeout", free_port(), free_port())
    running = [minio.start()]
    try:
        with SlackWebhookStandin() as slack:
            assert isinstance(slack, SlackWebhookStandin)
            lake_settings = s3_settings(minio, minio.endpoint, "lakeout")
            lake = Lake(lake_settings)
            consumer = ConsumerProcess(kafka, lake_settings, work / "consumer-lakeout.log")
            consumer.env.update(
                STOCKPIPE_SLACK_WEBHOOK_URL=slack.webhook_url(),
                STOCKPIPE_ALERT_MIN_INTERVAL_S="1",
                STOCKPIPE_MAX_RECORDS_PER_FILE=str(max(100, records // 40)),
                STOCKPIPE_METRICS_PORT=str(port),
                STOCKPIPE_STALL_SECONDS=str(stall_s),
                STOCKPIPE_ALERT_AFTER_RETRIES=str(alert_after_retries),
                STOCKPIPE_LAKE_RETRY_SECONDS=str(max(600.0, outage_s * 2)),
                STOCKPIPE_INCIDENT_STATE_FILE=str(work / "lakeout-incidents.json"),
            )
            consumer.start()
            messages = quote_messages(records)
            half = len(messages) // 2
            with HealthProbe(f"http://127.0.0.1:{port}/healthz", probe_period_s, CHART_PROBE_FAILURES) as probe:
                produced = produce_paced(kafka, messages[:half], 2.0, chunks=5)
                wait_for_rows(lake, produced, 300, records)
                terminate(running[-1].pid)
                console.print(f"  object store stopped for {outage_s:.0f} s while the stream goes on")
                started = time.monotonic()
                produced += produce_paced(kafka, messages[half:], min(outage_s / 2, 10.0), chunks=5)
                time.sleep(max(0.0, outage_s - (time.monotonic() - started)))  # the fault's duration
                running.append(minio.start())
                wait_for_rows(lake, produced, 300, records)
                code = consumer.stop()
            incidents = [t for t in slack.texts() if "the lake" in t and ":rotating_light:" in t]
            recoveries = [t for t in slack.texts() if "answers again" in t]
        scenario = counted(
            f"object store away for {outage_s:.0f} s, liveness polled",
            produced,
            lake,
            work,
            f"/healthz polled {probe.probes} times every {probe_period_s:.0f} s (stall limit {stall_s:.0f} s):"
            f" {probe.failures} failures, restarts due {probe.restarts_due}; Slack incidents {len(incidents)},"
            f" recoveries {len(recoveries)}, exit code {code}",
        )
        if probe.failures or probe.restarts_due or len(incidents) != 1 or len(recoveries) != 1 or code != 0:
            scenario.detail = "FAILED: " + scenario.detail + f"; last failed probe: {probe.worst}"
        return scenario
    finally:
        terminate(running[-1].pid)


def scenarios(
    outage_s: float, lake_outage_s: float
) -> dict[str, Callable[[KafkaBroker, Path, int, random.Random], Scenario]]:
    """The sinks' scenarios, by name: outage_s is the DLQ refusal's length, lake_outage_s the lake outage's."""
    return {
        "dlq_refused": lambda broker, work, records, rng: dlq_refused(
            broker, work, records // 20, rng, refuse_s=outage_s
        ),
        "lake_outage_no_restart": lambda broker, work, records, rng: lake_outage_no_restart(
            broker, work, records // 20, rng, outage_s=lake_outage_s
        ),
    }
