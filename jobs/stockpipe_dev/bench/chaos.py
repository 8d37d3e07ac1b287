"""`make chaos`: faults against the exactly-once path, every record counted in the lake and in bronze.

Scenarios: the consumer SIGKILLed at 10 random points; the broker restarted mid-stream; the object
store stopped for 30 s; a rebalance storm (three consumer processes on six partitions joining and
leaving every few seconds); plus the freshness path's loader and compaction scenarios, and `fuzz`
(arbitrary inputs through the consumer's batch path in a child process: `inputs`, `crashes`). Each
stream scenario ends with `lost` and `duplicated` counted over the natural key (symbol, quote_ts),
unique per produced record, in the lake, and `bronze_lost`/`bronze_duplicated` after the lake is
loaded into a DuckDB bronze with `BronzeLoader`. Writes `.bench/chaos.json`.

The second wave (`stockpipe_dev.bench.chaos_faults`): a zombie writer (SIGSTOP past the session
timeout, then SIGCONT, on an S3 lake), a full spool, network faults through toxiproxy on the Kafka
and S3 links, and a slow S3 answering 503 SlowDown.

The sinks (`stockpipe_dev.bench.chaos_sinks`): the dead-letter topic refusing dead letters for a
while (`dlq_refused`), and the object store away with the consumer's health polled as a liveness
probe would (`lake_outage_no_restart`).

`operator` (`stockpipe_dev.bench.chaos_operator`): the TickerWatchlist operator on a local control plane
with its link to the API server cut, the API server restarted, its ConfigMap written by hand and edit
bursts; what it counts is watchlist edits (`produced`), and one is lost when the ConfigMap does not
settle on the last state. No bronze there.

`--only` takes one name or several, comma-separated; a run with `--only` replaces those scenarios
in an existing `.bench/chaos.json` and keeps the others.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from stockpipe.lake.store import Lake
from stockpipe.settings import LakeSettings
from stockpipe.stream.topics import isolated_topics
from stockpipe_dev.bench.chaos_common import (
    ConsumerProcess,
    Scenario,
    console,
    count_lake,
    counted,
    produce,
    topics,
    wait_for_rows,
)
from stockpipe_dev.bench.stream import quote_messages
from stockpipe_dev.localservices.kafka import KafkaBroker
from stockpipe_dev.localservices.minio import MinioServer
from stockpipe_dev.localservices.process import free_port, terminate


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
    from stockpipe_dev.bench.fuzz import run_fuzz

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
    from stockpipe_dev.bench.chaos_operator import operator_faults
    from stockpipe_dev.localservices.kube.controlplane import ControlPlane

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
    lake_outage_s: float = 300.0,
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
        from stockpipe_dev.bench import freshness_chaos  # the intraday path, counted in bronze

        if wanted("loader"):
            console.rule("continuous bronze loader SIGKILLed at random points")
            scenarios.append(freshness_chaos.continuous_loader_killed(broker, work, rng))
        if wanted("compaction"):
            console.rule("compaction during consumer writes and continuous loads")
            scenarios.append(freshness_chaos.compaction_during_writes_and_loads(broker, work))
        if wanted("compaction_while_loading"):
            console.rule("compaction while loading: the continuous loader's cycle times")
            scenarios.append(freshness_chaos.compaction_while_loading(broker, work))
        from stockpipe_dev.bench.chaos_faults import SCENARIOS
        from stockpipe_dev.bench.chaos_sinks import scenarios as sink_scenarios

        for name, scenario_of in {**SCENARIOS, **sink_scenarios(outage_s, lake_outage_s)}.items():
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
