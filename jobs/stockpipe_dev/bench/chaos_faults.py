"""`make chaos`, second wave: a zombie writer, a full spool, and network faults through a fault proxy.

- zombie writer: two consumer processes on six partitions of an S3 lake (MinIO); one is frozen with
  SIGSTOP past its session timeout, with one of its lake calls held in flight, while its partitions
  move to the other; the held call reaches the store after the takeover, then the zombie wakes
  (SIGCONT). The lake's fence (a conditional PUT behind a check of the partition's progress) keeps
  it from replacing or duplicating what its successor wrote.
- spool full: the consumer's local lake directory on a small tmpfs, filled by a ballast file
  mid-stream, then given its space back.
- network faults: toxiproxy between the workloads and Kafka (latency, connection resets), between
  the consumer and S3 (the same), and a slow S3 answering `503 SlowDown` to a share of requests.
Each is counted in the lake and in bronze like the first wave (`stockpipe_dev.bench.chaos`).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr
from rich.console import Console

from stockpipe.lake.store import Lake
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.topics import isolated_topics
from stockpipe_dev.bench.chaos_common import ConsumerProcess, Scenario, count_lake, counted, produce, wait_for_rows
from stockpipe_dev.bench.stream import quote_messages
from stockpipe_dev.localservices.kafka import KafkaBroker
from stockpipe_dev.localservices.minio import MinioServer
from stockpipe_dev.localservices.process import free_port, terminate
from stockpipe_dev.localservices.slack_standin import SlackWebhookStandin
from stockpipe_dev.localservices.slow_s3 import SlowS3
from stockpipe_dev.localservices.toxiproxy import Toxiproxy
from stockpipe_dev.localservices.versions import TOXIPROXY_VERSION

console = Console(stderr=True)


def produce_paced(kafka: KafkaSettings, messages: list[dict[str, Any]], span_s: float, chunks: int = 50) -> int:
    """Publish over about span_s seconds (the stream keeps arriving while faults come and go)."""
    return produce(
        kafka, messages, during=lambda _: time.sleep(span_s / chunks), chunk=max(1, -(-len(messages) // chunks))
    )


@contextlib.contextmanager
def minio_lake(work: Path, name: str) -> Iterator[tuple[MinioServer, LakeSettings]]:
    minio = MinioServer(work / f"minio-{name}", free_port(), free_port())
    record = minio.start()
    try:
        yield minio, s3_settings(minio, minio.endpoint, name)
    finally:
        terminate(record.pid)


def s3_settings(minio: MinioServer, endpoint: str, prefix: str) -> LakeSettings:
    return LakeSettings(
        url=f"s3://{minio.bucket}/{prefix}",
        s3_endpoint_url=endpoint,
        access_key=SecretStr(minio.access_key),
        secret_key=SecretStr(minio.secret_key),
    )


def _log_count(paths: list[Path], needle: str) -> int:
    return sum(p.read_text(errors="replace").count(needle) for p in paths if p.exists())


def _wait_for_log(path: Path, needle: str, count: int, timeout_s: float = 120.0) -> None:
    """Until the log holds needle at least count times (a consumer assigned, say)."""
    deadline = time.monotonic() + timeout_s
    while _log_count([path], needle) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path.name}: no {needle!r} (x{count}) after {timeout_s:.0f} s")
        time.sleep(0.2)


def _holds_partitions(log: Path) -> bool:
    """Whether a consumer's log says it holds quote partitions now (its last assignment not taken back)."""
    holds = False
    for line in log.read_text(errors="replace").splitlines():
        for event, holding in (('"assigned quotes', True), ('"revoked quotes', False), ('"lost quotes', False)):
            if event in line:
                holds = holding
    return holds


# -- zombie writer ----------------------------------------------------------------------------------


def zombie_writer(
    broker: KafkaBroker,
    work: Path,
    records: int,
    rng: random.Random,
    stops: int = 3,
    file_records: int = 20_000,
    lake: LakeSettings | None = None,
) -> Scenario:
    """A consumer frozen (SIGSTOP) past its session timeout while its partitions move, then woken (SIGCONT).

    The zombie reaches S3 through a stand-in that can hold its requests: each freeze lands while one
    of its lake calls is in flight (the progress check or the PUT itself), and that call reaches the
    store only after the successor has taken the partitions over and written: the zombie's write
    arrives late, as after a long GC pause.
    """
    if lake is None:
        with minio_lake(work, "zombie") as (_, settings):
            return zombie_writer(broker, work, records, rng, stops, file_records, settings)
    assert lake.s3_endpoint_url, "the zombie scenario runs on an S3 lake"
    with SlowS3(lake.s3_endpoint_url, 0.0) as gate:
        return _zombie_run(broker, work, records, rng, stops, file_records, lake, gate)


def _zombie_run(
    broker: KafkaBroker,
    work: Path,
    records: int,
    rng: random.Random,
    stops: int,
    file_records: int,
    lake: LakeSettings,
    gate: SlowS3,
) -> Scenario:
    kafka = isolated_topics(broker.bootstrap, f"zombie{rng.randrange(10**6)}", partitions=6)
    session_s = 6.0
    zombie = ConsumerProcess(kafka, lake.model_copy(update={"s3_endpoint_url": gate.endpoint}), work / "zombie.log")
    successor = ConsumerProcess(kafka, lake, work / "consumer-successor.log")
    for proc in (zombie, successor):
        proc.env["STOCKPIPE_SESSION_TIMEOUT_MS"] = str(int(session_s * 1000))
        proc.env["STOCKPIPE_MAX_RECORDS_PER_FILE"] = str(file_records)
        proc.env["STOCKPIPE_BATCH_SIZE"] = "2000"  # small polls: a frozen consumer holds a batch mid-way
        proc.start()
        _wait_for_log(proc.log, "assigned quotes", 1)  # both in the group before the stream starts
    produced: list[int] = []
    span_s = stops * (session_s + 12.0) + 5.0
    producer = threading.Thread(
        target=lambda: produced.append(produce_paced(kafka, quote_messages(records), span_s)), daemon=True
    )
    producer.start()
    codes: list[int | None] = []
    frozen_mid_call = 0
    try:
        for _ in range(stops):
            # Only a consumer that holds partitions can be a zombie: wait for its (re)assignment.
            deadline = time.monotonic() + 60
            while not _holds_partitions(zombie.log) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(rng.uniform(1.0, 4.0))
            gate.hold()  # its next lake call stays in flight
            deadline = time.monotonic() + 20
            while not gate.held and time.monotonic() < deadline:
                time.sleep(0.05)
            assert zombie.proc is not None
            zombie.proc.send_signal(signal.SIGSTOP)
            frozen_mid_call += gate.held > 0
            time.sleep(session_s + rng.uniform(4.0, 7.0))  # past the session timeout: its partitions move
            gate.release()  # the held call reaches the store now, after the successor's writes
            time.sleep(0.5)
            zombie.proc.send_signal(signal.SIGCONT)
        producer.join(600)
        if not produced:
            raise RuntimeError("the producer did not finish")
        wait_for_rows(Lake(lake), produced[0], 600, produced[0])
    finally:
        for proc in (zombie, successor):
            if proc.proc is not None and proc.proc.poll() is None:
                proc.proc.send_signal(signal.SIGCONT)
                codes.append(proc.stop())
            elif proc.proc is not None:
                codes.append(proc.proc.returncode)
    logs = [zombie.log, successor.log]
    return counted(
        f"zombie writer: a consumer SIGSTOPped past its session timeout {stops} times, then SIGCONTed",
        produced[0],
        Lake(lake),
        work,
        f"S3 lake (MinIO, conditional PUT); frozen {stops} times, {frozen_mid_call} of them with a lake call in"
        " flight (a write, or the lookups of an assignment), delivered to the store after the takeover; after waking:"
        f" {_log_count(logs, 'fenced:')} writes fenced, {_log_count(logs, 'same bytes')} names found taken"
        f" (kept, not rewritten), {_log_count(logs, 'commit skipped')} stale commits refused by the group,"
        f" {_log_count([zombie.log], 'lost quotes')} partitions found lost; exit codes {codes} (SIGTERM at the end)",
    )


# -- spool full ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of size_mb at path (root only), unmounted and removed afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
        with contextlib.suppress(OSError):
            path.rmdir()


def fill(path: Path, leave_bytes: int = 0) -> Path:
    """A ballast file taking all but leave_bytes of the file system's free space."""
    ballast = path / "ballast"
    stat = os.statvfs(path)
    free = stat.f_bavail * stat.f_frsize - leave_bytes
    with open(ballast, "wb") as out:
        block = b"\0" * (1 << 20)
        with contextlib.suppress(OSError):  # ENOSPC: full, as meant
            while free > 0:
                out.write(block[: min(len(block), free)])
                free -= len(block)
            out.flush()
    return ballast


def committed_offsets(kafka: KafkaSettings, group: str, partitions: int) -> dict[int, int]:
    probe = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": group})
    try:
        tps = [TopicPartition(kafka.topic_quotes, p) for p in range(partitions)]
        return {tp.partition: tp.offset for tp in probe.committed(tps, timeout=10)}
    finally:
        probe.close()


def spool_full(broker: KafkaBroker, work: Path, records: int, rng: random.Random, full_s: float = 20.0) -> Scenario:
    """The consumer's local lake directory runs out of space mid-stream, then gets it back."""
    kafka = isolated_topics(broker.bootstrap, f"spool{rng.randrange(10**6)}")
    size_mb = max(16, records // 2_000)  # room for the stream's files; the ballast takes the rest
    with small_tmpfs(work / "spool", size_mb) as spool, SlackWebhookStandin() as slack:
        assert isinstance(slack, SlackWebhookStandin)
        lake_settings = LakeSettings(url=f"file://{spool / 'lake'}")
        lake = Lake(lake_settings)
        consumer = ConsumerProcess(kafka, lake_settings, work / "consumer-spool.log")
        consumer.env["STOCKPIPE_SLACK_WEBHOOK_URL"] = slack.webhook_url()
        consumer.env["STOCKPIPE_ALERT_MIN_INTERVAL_S"] = "1"
        consumer.env["STOCKPIPE_MAX_RECORDS_PER_FILE"] = str(max(100, records // 40))
        consumer.start()
        messages = quote_messages(records)
        half = len(messages) // 2
        produced = produce_paced(kafka, messages[:half], 2.0, chunks=5)
        wait_for_rows(lake, produced, 300, records)
        group = f"chaos-{kafka.topic_quotes}"
        ballast = fill(spool)
        committed_before = committed_offsets(kafka, group, 3)
        console.print(f"  spool full ({size_mb} MB tmpfs) for {full_s:.0f} s while the stream goes on")
        produced += produce_paced(kafka, messages[half:], 2.0, chunks=5)
        before = count_lake(lake, records)[0]
        time.sleep(full_s)
        # Nothing committed that is not in the lake: no object could be written, so no offset moved.
        committed = committed_offsets(kafka, group, 3)
        moved = {p: (committed_before[p], o) for p, o in committed.items() if o != committed_before[p]}
        during = count_lake(lake, records)[0]
        incidents = [t for t in slack.texts() if "no space left" in t]
        ballast.unlink()
        wait_for_rows(lake, produced, 300, records)
        code = consumer.stop()
        recoveries = [t for t in slack.texts() if "space again" in t]
        scenario = counted(
            f"spool full: the consumer's lake directory out of space for {full_s:.0f} s",
            produced,
            lake,
            work,
            f"{size_mb} MB tmpfs filled mid-stream: lake rows {before:,} -> {during:,} while full,"
            f" committed offsets moved while full: {moved or 'none'}, Slack incidents {len(incidents)},"
            f" recoveries {len(recoveries)}, exit code {code}",
        )
        if moved or during != before or len(incidents) != 1 or len(recoveries) != 1 or code != 0:
            scenario.detail = "FAILED: " + scenario.detail
        return scenario


# -- network faults -----------------------------------------------------------------------------------


@dataclass
class ProxiedKafkaBroker(KafkaBroker):
    """A broker with a second listener whose advertised address is a proxy's, so clients that bootstrap
    through the proxy stay on it (Kafka answers metadata with the listener's own advertised address)."""

    proxied_port: int = 0
    proxy_port: int = 0

    def _properties(self) -> Path:
        props = super()._properties()
        settings = dict(line.split("=", 1) for line in props.read_text().splitlines() if "=" in line)
        settings["listeners"] += f",PROXIED://127.0.0.1:{self.proxied_port}"
        settings["advertised.listeners"] += f",PROXIED://127.0.0.1:{self.proxy_port}"
        settings["listener.security.protocol.map"] += ",PROXIED:PLAINTEXT"
        settings["inter.broker.listener.name"] = "PLAINTEXT"
        props.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        return props


def _storm(stop: threading.Event, toxi: Toxiproxy, proxy: str, rng: random.Random, counts: dict[str, int]) -> None:
    """Connection resets every few seconds (both ways), for a fraction of a second each."""
    while not stop.wait(rng.uniform(2.0, 4.0)):
        toxi.add_toxic(proxy, "reset", "reset_peer", {"timeout": 0}, stream=rng.choice(["upstream", "downstream"]))
        time.sleep(rng.uniform(0.2, 0.8))
        toxi.remove_toxic(proxy, "reset")
        counts["resets"] += 1


@contextlib.contextmanager
def faults(toxi: Toxiproxy, proxy: str, rng: random.Random, latency_ms: int) -> Iterator[dict[str, int]]:
    toxi.add_toxic(proxy, "lat-down", "latency", {"latency": latency_ms, "jitter": latency_ms // 2})
    toxi.add_toxic(proxy, "lat-up", "latency", {"latency": latency_ms, "jitter": latency_ms // 2}, stream="upstream")
    counts = {"resets": 0}
    stop = threading.Event()
    storm = threading.Thread(target=_storm, args=(stop, toxi, proxy, rng, counts), daemon=True)
    storm.start()
    try:
        yield counts
    finally:
        stop.set()
        storm.join(10)
        for name in ("lat-down", "lat-up"):
            toxi.remove_toxic(proxy, name)


def _stream_through(
    kafka: KafkaSettings,
    lake_settings: LakeSettings,
    work: Path,
    name: str,
    records: int,
    span_s: float,
    observed: Lake | None = None,
) -> int:
    """Produce over span_s with a consumer running; returns when the lake holds every record (or times out).

    The lake is watched through `observed` (default: the consumer's own lake settings): where the consumer's
    link to the lake is the one under faults, the watcher must not read through it too.
    """
    consumer = ConsumerProcess(kafka, lake_settings, work / f"consumer-{name}.log")
    consumer.env["STOCKPIPE_MAX_RECORDS_PER_FILE"] = str(max(50, records // 100))  # lake writes all along
    consumer.start()
    try:
        produced = produce_paced(kafka, quote_messages(records), span_s)
        wait_for_rows(observed or Lake(lake_settings), produced, 600, produced)
    finally:
        consumer.stop()
    return produced


def kafka_link_faults(work: Path, records: int, rng: random.Random, span_s: float = 40.0) -> Scenario:
    """Producer and consumer reach Kafka only through toxiproxy: latency throughout, resets every few seconds."""
    toxi = Toxiproxy(work / "toxiproxy-kafka", free_port())
    toxi_record = toxi.start()
    broker = ProxiedKafkaBroker(
        work / "kafka-proxied", free_port(), free_port(), proxied_port=free_port(), proxy_port=free_port()
    )
    proxy = toxi.proxy("kafka", broker.proxy_port, f"127.0.0.1:{broker.proxied_port}")
    broker_record = broker.start()
    try:
        kafka = isolated_topics(proxy, f"kafkanet{rng.randrange(10**6)}")
        lake_settings = LakeSettings(url=f"file://{work / 'lake-kafkanet'}")
        with faults(toxi, "kafka", rng, latency_ms=50) as counts:
            produced = _stream_through(kafka, lake_settings, work, "kafkanet", records, span_s)
        return counted(
            "network faults on the Kafka link: latency and connection resets",
            produced,
            Lake(lake_settings),
            work,
            f"toxiproxy {TOXIPROXY_VERSION}: 50±25 ms each way, {counts['resets']} reset bursts"
            " (reset_peer) on producer and consumer connections",
        )
    finally:
        KafkaBroker.stop(broker_record)
        Toxiproxy.stop(toxi_record)


def s3_link_faults(broker: KafkaBroker, work: Path, records: int, rng: random.Random, span_s: float = 40.0) -> Scenario:
    """The consumer reaches S3 (MinIO) only through toxiproxy: latency throughout, resets every few seconds."""
    toxi = Toxiproxy(work / "toxiproxy-s3", free_port())
    toxi_record = toxi.start()
    try:
        with minio_lake(work, "s3net") as (minio, _):
            proxy = toxi.proxy("s3", free_port(), f"127.0.0.1:{minio.port}")
            lake_settings = s3_settings(minio, f"http://{proxy}", "s3net")
            direct = Lake(s3_settings(minio, minio.endpoint, "s3net"))  # what the checks read: no faults
            kafka = isolated_topics(broker.bootstrap, f"s3net{rng.randrange(10**6)}")
            with faults(toxi, "s3", rng, latency_ms=30) as counts:
                produced = _stream_through(kafka, lake_settings, work, "s3net", records, span_s, observed=direct)
            retries = _log_count([work / "consumer-s3net.log"], "retrying")
            objects = sum(1 for _ in Lake(lake_settings).walk("raw/quotes"))
            return counted(
                "network faults on the S3 link: latency and connection resets",
                produced,
                direct,
                work,
                f"toxiproxy: 30±15 ms each way, {counts['resets']} reset bursts; {objects} objects written through"
                f" it; the consumer retried lake calls {retries} times (beyond botocore's own retries)",
            )
    finally:
        Toxiproxy.stop(toxi_record)


def slow_s3(
    broker: KafkaBroker, work: Path, records: int, rng: random.Random, ratio: float = 0.2, span_s: float = 30.0
) -> Scenario:
    """The consumer's S3 answers `503 SlowDown` to a share of its requests."""
    with minio_lake(work, "slowdown") as (minio, _), SlowS3(minio.endpoint, ratio, seed=rng.randrange(10**6)) as slow:
        lake_settings = s3_settings(minio, slow.endpoint, "slowdown")
        direct = Lake(
            s3_settings(minio, minio.endpoint, "slowdown")
        )  # the checks' reads are neither slowed nor counted
        kafka = isolated_topics(broker.bootstrap, f"slowdown{rng.randrange(10**6)}")
        produced = _stream_through(kafka, lake_settings, work, "slowdown", records, span_s, observed=direct)
        return counted(
            f"slow S3: {ratio:.0%} of requests answered 503 SlowDown",
            produced,
            direct,
            work,
            f"{slow.slowed:,} of {slow.requests:,} S3 requests answered 503 SlowDown",
        )


SCENARIOS: dict[str, Callable[[KafkaBroker, Path, int, random.Random], Scenario]] = {
    "zombie": lambda broker, work, records, rng: zombie_writer(broker, work, records // 5, rng, 4, 2_000),
    "spool": lambda broker, work, records, rng: spool_full(broker, work, records // 10, rng),
    "kafkanet": lambda _broker, work, records, rng: kafka_link_faults(work, records // 10, rng),
    "s3net": lambda broker, work, records, rng: s3_link_faults(broker, work, records // 10, rng),
    "slowdown": lambda broker, work, records, rng: slow_s3(broker, work, records // 10, rng),
}


def tmp_work() -> Path:
    return Path(tempfile.mkdtemp(prefix="stockpipe-chaos-"))
