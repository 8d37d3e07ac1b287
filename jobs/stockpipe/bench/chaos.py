"""`make chaos`: faults against the exactly-once path, every record counted in the lake and in bronze.

Scenarios: the consumer SIGKILLed at 10 random points; the broker restarted mid-stream; the object
store stopped for 30 s; a rebalance storm (three consumer processes on six partitions joining and
leaving every few seconds); plus the freshness path's loader and compaction scenarios, and `fuzz`
(arbitrary inputs through the consumer's batch path in a child process: `inputs`, `crashes`). Each
stream scenario ends with `lost` and `duplicated` counted over the natural key (symbol, quote_ts),
unique per produced record, in the lake, and `bronze_lost`/`bronze_duplicated` after the lake is
loaded into a DuckDB bronze with `BronzeLoader`. Writes `.bench/chaos.json`.

The second wave (`stockpipe.bench.chaos_faults`): a zombie writer (SIGSTOP past the session
timeout, then SIGCONT, on an S3 lake), a full spool, network faults through toxiproxy on the Kafka
and S3 links, and a slow S3 answering 503 SlowDown.

`operator` (`stockpipe.bench.chaos_operator`): the TickerWatchlist operator on a local control plane
with its link to the API server cut, the API server restarted, its ConfigMap written by hand and edit
bursts; what it counts is watchlist edits (`produced`), and one is lost when the ConfigMap does not
settle on the last state. No bronze there.

`--only` takes one name or several, comma-separated; a run with `--only` replaces those scenarios
in an existing `.bench/chaos.json` and keeps the others.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import SecretStr
from rich.console import Console

from stockpipe.bench.stream import SESSION_OPEN, quote_messages
from stockpipe.contracts.messages import QUOTE_V1
from stockpipe.lake.layout import StreamObject
from stockpipe.lake.store import Lake
from stockpipe.localservices.kafka import KafkaBroker
from stockpipe.localservices.minio import MinioServer
from stockpipe.localservices.process import free_port, terminate
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.stream.publisher import Publisher
from stockpipe.stream.topics import isolated_topics

console = Console(stderr=True)


@dataclass
class Scenario:
    name: str
    produced: int
    in_lake: int
    lost: int
    duplicated: int
    detail: str = ""
    bronze_rows: int | None = None  # None: not loaded into bronze
    bronze_lost: int | None = None
    bronze_duplicated: int | None = None
    inputs: int | None = None  # fuzz only
    crashes: int | None = None  # fuzz only


def count_bronze(lake: Lake, produced: int, warehouse: Path) -> tuple[int, int, int]:
    """(rows in bronze, lost, duplicated) after loading the whole lake with the product's BronzeLoader."""
    import duckdb

    from stockpipe.warehouse.duckdb_target import DuckDBTarget
    from stockpipe.warehouse.loader import BronzeLoader

    with DuckDBTarget(warehouse, lake) as target:
        BronzeLoader(lake, target, listing="full").run()
    conn = duckdb.connect(str(warehouse), read_only=True)
    try:
        row = conn.execute("SELECT count(*), count(DISTINCT (symbol, quote_ts)) FROM bronze.quotes").fetchone()
    finally:
        conn.close()
    assert row is not None
    rows, distinct = int(row[0]), int(row[1])
    return rows, produced - distinct, rows - distinct


def counted(name: str, produced: int, lake: Lake, work: Path, detail: str) -> Scenario:
    """A stream scenario's result: every produced record counted in the lake and in bronze."""
    rows, lost, dup = count_lake(lake, produced)
    b_rows, b_lost, b_dup = count_bronze(lake, produced, work / f"bronze-{time.monotonic_ns()}.duckdb")
    return Scenario(name, produced, rows, lost, dup, detail, b_rows, b_lost, b_dup)


def count_lake(lake: Lake, produced: int) -> tuple[int, int, int]:
    """(rows in the lake, lost, duplicated) over the natural key; every produced key is distinct."""
    tables = []
    for info in lake.walk("raw/quotes"):
        if StreamObject.parse(info.key):
            tables.append(pq.read_table(pa.BufferReader(lake.read(info.key)), columns=["symbol", "quote_ts"]))
    if not tables:
        return 0, produced, 0
    table = pa.concat_tables(tables)
    keys = pc.binary_join_element_wise(
        table["symbol"], pc.cast(pc.cast(table["quote_ts"], pa.int64()), pa.string()), "|"
    )
    distinct = pc.count_distinct(keys).as_py()
    return table.num_rows, produced - distinct, table.num_rows - distinct


class ConsumerProcess:
    """`stockpipe consumer` as its own process, as it runs in a pod."""

    def __init__(self, kafka: KafkaSettings, lake: LakeSettings, log: Path) -> None:
        self.env = {
            **os.environ,
            "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "STOCKPIPE_KAFKA__TOPIC_QUOTES": kafka.topic_quotes,
            "STOCKPIPE_KAFKA__TOPIC_TRADES": kafka.topic_trades,
            "STOCKPIPE_KAFKA__TOPIC_DLQ": kafka.topic_dlq,
            "STOCKPIPE_KAFKA__TOPIC_HEARTBEATS": kafka.topic_heartbeats,
            "STOCKPIPE_LAKE__URL": lake.url,
            "STOCKPIPE_GROUP_ID": f"chaos-{kafka.topic_quotes}",
            "STOCKPIPE_METRICS_PORT": "0",
            "STOCKPIPE_MAX_RECORDS_PER_FILE": "20000",
            "STOCKPIPE_WINDOW_SECONDS": "3600",
        }
        if lake.s3_endpoint_url:
            self.env["STOCKPIPE_LAKE__S3_ENDPOINT_URL"] = lake.s3_endpoint_url
        if lake.access_key and lake.secret_key:
            self.env["STOCKPIPE_LAKE__ACCESS_KEY"] = lake.access_key.get_secret_value()
            self.env["STOCKPIPE_LAKE__SECRET_KEY"] = lake.secret_key.get_secret_value()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stockpipe.cli", "consumer"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def wait_for_rows(lake: Lake, target: int, timeout_s: float, produced: int) -> int:
    deadline = time.monotonic() + timeout_s
    rows = 0
    while time.monotonic() < deadline:
        rows = count_lake(lake, produced)[0]
        if rows >= target:
            break
        time.sleep(1.0)
    return rows


def produce(
    kafka: KafkaSettings,
    messages: list[dict[str, Any]],
    during: Callable[[int], None] | None = None,
    chunk: int = 10_000,
) -> int:
    """Publish with our producer; `during(i)` runs between batches (to inject a fault). Returns acknowledged."""
    publisher = Publisher(kafka, max_queue_messages=200_000, full_timeout_s=120)
    for i in range(0, len(messages), chunk):
        publisher.publish(kafka.topic_quotes, QUOTE_V1, messages[i : i + chunk])
        if during:
            during(i)
    if publisher.flush(180):
        raise RuntimeError("messages still unacknowledged after 180 s")
    acknowledged = publisher.delivered
    publisher.watermark(kafka.topic_quotes, SESSION_OPEN + timedelta(days=1))
    publisher.flush(60)
    return acknowledged


def topics(broker: KafkaBroker, name: str) -> KafkaSettings:
    return isolated_topics(broker.bootstrap, name)


def consumer_killed(broker: KafkaBroker, work: Path, records: int, kills: int, rng: random.Random) -> Scenario:
    kafka = topics(broker, "kill")
    lake_settings = LakeSettings(url=f"file://{work / 'lake-kill'}")
    lake = Lake(lake_settings)
    produced = produce(kafka, quote_messages(records))
    consumer = ConsumerProcess(kafka, lake_settings, work / "consumer-kill.log")
    points = sorted(rng.sample(range(records // 20, records - records // 20), kills))
    for point in points:
        consumer.start()
        wait_for_rows(lake, point, 300, produced)
        time.sleep(rng.uniform(0.0, 1.5))  # anywhere: mid-batch, mid-write, between write and commit
        consumer.kill()  # SIGKILL: no flush, no commit, no goodbye
    consumer.start()
    wait_for_rows(lake, produced, 600, produced)
    consumer.stop()
    return counted(
        "consumer SIGKILLed at 10 random points",
        produced,
        lake,
        work,
        f"killed after {', '.join(f'{p:,}' for p in points)} rows were in the lake",
    )


def broker_restarted(broker: KafkaBroker, record: Any, work: Path, records: int) -> tuple[Scenario, Any]:
    kafka = topics(broker, "restart")
    lake_settings = LakeSettings(url=f"file://{work / 'lake-restart'}")
    lake = Lake(lake_settings)
    consumer = ConsumerProcess(kafka, lake_settings, work / "consumer-restart.log")
    consumer.start()
    state = {"record": record}

    def restart_midway(i: int) -> None:
        if i == (records // 2) - 10_000:
            console.print("  stopping the broker mid-stream")
            KafkaBroker.stop(state["record"])
            time.sleep(5)
            state["record"] = broker.start()
            console.print("  broker back")

    produced = produce(kafka, quote_messages(records), during=restart_midway)
    wait_for_rows(lake, produced, 600, produced)
    consumer.stop()
    detail = "the broker was stopped for 5 s with messages in flight; producer and consumer rode it out"
    return counted("broker restarted mid-stream", produced, lake, work, detail), state["record"]


def object_store_stopped(broker: KafkaBroker, work: Path, records: int, outage_s: float) -> Scenario:
    kafka = topics(broker, "s3down")
    minio = MinioServer(work / "minio", free_port(), free_port())
    minio_record = minio.start()
    lake_settings = LakeSettings(
        url=f"s3://{minio.bucket}/chaos",
        s3_endpoint_url=minio.endpoint,
        access_key=SecretStr(minio.access_key),
        secret_key=SecretStr(minio.secret_key),
    )
    lake = Lake(lake_settings)
    consumer = ConsumerProcess(kafka, lake_settings, work / "consumer-s3down.log")
    consumer.start()
    stopped = threading.Event()
    restarted: list[Any] = []

    def take_minio_away() -> None:
        console.print(f"  stopping MinIO for {outage_s:.0f} s while producing continues")
        terminate(minio_record.pid)
        time.sleep(outage_s)
        restarted.append(minio.start())
        console.print("  MinIO back")

    outage_thread = threading.Thread(target=take_minio_away, daemon=True)

    def outage(i: int) -> None:
        if i >= records // 5 and not stopped.is_set():
            stopped.set()
            outage_thread.start()
        if stopped.is_set():
            time.sleep(0.5)  # spread the rest of the stream over the outage

    try:
        produced = produce(kafka, quote_messages(records), during=outage)
        outage_thread.join()
        wait_for_rows(lake, produced, 600, produced)
        consumer.stop()
        retries = (work / "consumer-s3down.log").read_text().count("retrying")
        return counted(
            f"object store stopped for {outage_s:.0f} s",
            produced,
            lake,
            work,
            f"the consumer retried lake calls {retries} times during the outage",
        )
    finally:
        terminate((restarted or [minio_record])[-1].pid)


def rebalance_storm(
    broker: KafkaBroker, work: Path, records: int, rng: random.Random, every_s: float = 3.0, consumers: int = 3
) -> Scenario:
    """Three consumer processes on six partitions, one leaving (SIGTERM or SIGKILL) and rejoining every few seconds."""
    kafka = isolated_topics(broker.bootstrap, f"storm{rng.randrange(10**6)}", partitions=6)
    lake_settings = LakeSettings(url=f"file://{work / 'lake-storm'}")
    lake = Lake(lake_settings)
    produced = produce(kafka, quote_messages(records))
    procs = [ConsumerProcess(kafka, lake_settings, work / f"consumer-storm-{i}.log") for i in range(consumers)]
    for proc in procs:
        proc.env["STOCKPIPE_SESSION_TIMEOUT_MS"] = "6000"  # a killed member's partitions move on soon
        proc.start()
    moves = {"term": 0, "kill": 0}
    deadline = time.monotonic() + max(120.0, records / 2000)
    try:
        while time.monotonic() < deadline and count_lake(lake, produced)[0] < produced:
            time.sleep(rng.uniform(0.5, every_s))
            leaving = rng.choice(procs)
            how = rng.choice(["term", "kill"])
            if how == "kill":
                leaving.kill()
            else:
                leaving.stop()
            moves[how] += 1
            leaving.start()  # rejoins: another rebalance
        wait_for_rows(lake, produced, 300, produced)
    finally:
        for proc in procs:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.stop()
    return counted(
        "rebalance storm: 3 consumers on 6 partitions joining and leaving",
        produced,
        lake,
        work,
        f"{moves['term']} clean leaves and {moves['kill']} SIGKILLs, each followed by a rejoin",
    )


def fuzz_scenario(inputs: int, seed: int) -> Scenario:
    """Arbitrary inputs through the consumer's batch path, in a child process: crashes, hangs, silent drops."""
    from stockpipe.bench.fuzz import run_fuzz

    report = run_fuzz(inputs, seed=seed)
    bad = report.silent_drops + report.duplicates + report.hangs
    return Scenario(
        "fuzz",
        report.inputs,
        report.rows,
        report.silent_drops,
        report.duplicates,
        f"{report.batches:,} batches (each input alone and among good quotes), {report.hangs} hangs,"
        f" {report.dead_letters:,} dead letters, {report.rows:,} rows, {report.seconds:.0f} s"
        + (f"; failures: {report.failures[:3]}" if bad or report.crashes else ""),
        inputs=report.inputs,
        crashes=report.crashes,
    )


def _operator_scenario(work: Path, rng: random.Random) -> Scenario:
    from stockpipe.bench.chaos_operator import operator_faults
    from stockpipe.localservices.kube.controlplane import ControlPlane

    plane = ControlPlane(work / "cluster", echo=console.print)
    plane.up()
    try:
        return operator_faults(plane, work / "operator", rounds=5, rng=rng, echo=console.print)
    finally:
        plane.down()


def run_chaos(
    out_dir: Path,
    records: int = 1_000_000,
    seed: int = 20251128,
    outage_s: float = 30.0,
    only: str | None = None,
    fuzz_inputs: int = 100_000,
) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - reproducible fault points, not security
    chosen = None if only is None else {name.strip() for name in only.split(",") if name.strip()}

    def wanted(name: str) -> bool:
        return chosen is None or name in chosen

    work = Path(tempfile.mkdtemp(prefix="stockpipe-chaos-"))
    broker = KafkaBroker(work / "kafka", free_port(), free_port(), heap="1g")
    record = broker.start()
    scenarios: list[Scenario] = []
    try:
        if wanted("kill"):
            console.rule("consumer SIGKILLed at 10 random points")
            scenarios.append(consumer_killed(broker, work, records, 10, rng))
        if wanted("broker"):
            console.rule("broker restarted mid-stream")
            scenario, record = broker_restarted(broker, record, work, records // 2)
            scenarios.append(scenario)
        if wanted("objectstore"):
            console.rule("object store stopped")
            scenarios.append(object_store_stopped(broker, work, records // 4, outage_s))
        if wanted("storm"):
            console.rule("rebalance storm")
            scenarios.append(rebalance_storm(broker, work, records, rng))
        if wanted("fuzz"):
            console.rule(f"fuzz: {fuzz_inputs:,} inputs through the consumer's batch path")
            scenarios.append(fuzz_scenario(fuzz_inputs, seed))
        from stockpipe.bench import freshness_chaos  # the intraday path, counted in bronze

        if wanted("loader"):
            console.rule("continuous bronze loader SIGKILLed at random points")
            scenarios.append(freshness_chaos.continuous_loader_killed(broker, work, rng))
        if wanted("compaction"):
            console.rule("compaction during consumer writes and continuous loads")
            scenarios.append(freshness_chaos.compaction_during_writes_and_loads(broker, work))
        from stockpipe.bench.chaos_faults import SCENARIOS

        for name, scenario_of in SCENARIOS.items():
            if wanted(name):
                console.rule(name)
                scenarios.append(scenario_of(broker, work, records, rng))
        if wanted("operator"):
            console.rule("operator: link down, API server restarted, hand-written ConfigMap, edit bursts")
            scenarios.append(_operator_scenario(work, rng))
    finally:
        KafkaBroker.stop(record)
        shutil.rmtree(work, ignore_errors=True)
    fresh = [asdict(s) for s in scenarios]
    previous = out_dir / "chaos.json"
    kept: list[dict[str, Any]] = []
    if chosen is not None and previous.exists():  # a partial run updates its scenarios, keeps the rest
        names = {s["name"] for s in fresh}
        kept = [s for s in json.loads(previous.read_text()).get("scenarios", []) if s.get("name") not in names]
    result = {"seed": seed, "scenarios": kept + fresh}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "chaos.json").write_text(json.dumps(result, indent=2) + "\n")
    for s in scenarios:
        console.print(
            f"{s.name}: produced {s.produced:,}, in lake {s.in_lake:,}, lost {s.lost}, duplicated {s.duplicated}"
        )
    return result
