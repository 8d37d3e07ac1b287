"""A warehouse built by the pipeline, the dashboard serving it, and Debian's Chromium driven by Playwright.

Built once per test session: the warehouse tests' synthetic lake (half a year of bars, one session of
quotes and trades, dead letters), plus one dead letter this run causes (an empty message on the quotes
topic, routed by the real consumer into the lake), then `stockpipe load bronze` and
`stockpipe load dbt-build`, each as its own process, like Airflow runs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe_dev.localservices.kafka import KafkaBroker
from stockpipe_dev.localservices.process import free_port
from tests.integration.warehouse.conftest import SyntheticLake, write_synthetic_lake

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = Path("/usr/bin/chromium")
# The browser's own download is out of reach: Debian's Chromium, without anything that calls home.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = REPO / ".bench" / "screenshots"


@dataclass
class BuiltWarehouse:
    path: Path
    lake: SyntheticLake
    kafka: KafkaSettings
    group: str
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.Popen[str]:
        """A `stockpipe` command on this warehouse, as its own process."""
        return subprocess.Popen(
            [str(Path(sys.executable).with_name("stockpipe")), *args],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    def check(self, *args: str, timeout: float = 600) -> str:
        proc = self.run(*args)
        out, _ = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"stockpipe {' '.join(args)} failed:\n{out[-4000:]}"
        return out


def cause_a_dead_letter(kafka: KafkaSettings, lake: LakeSettings, group: str) -> None:
    """An empty message on the quotes topic, consumed by the lake consumer: its dead letter lands in the lake."""
    from confluent_kafka import Producer

    from stockpipe.stream.consumer import ConsumerSettings, LakeConsumer

    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    producer.produce(kafka.topic_quotes, None, key=b"AAPL")
    assert producer.flush(20) == 0
    settings = ConsumerSettings(
        kafka=kafka, lake=lake, metrics_port=0, group_id=group, dlq_window_seconds=1, heartbeat_seconds=0.5
    )
    consumer = LakeConsumer(settings)
    consumer.run(max_idle_s=5)
    assert consumer.stats.dead_letters == 1


@pytest.fixture(scope="session")
def work_dir() -> Iterator[Path]:
    # Not under pytest's basetemp: other test runs on this machine prune those while the dashboard reads it.
    root = Path(tempfile.mkdtemp(prefix="stockpipe-dashboard-test-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def built_warehouse(kafka_broker: KafkaBroker, work_dir: Path) -> BuiltWarehouse:
    from stockpipe.stream.topics import isolated_topics

    root = work_dir
    lake_settings = LakeSettings(url=f"file://{root / 'lake'}")
    lake = write_synthetic_lake(lake_settings)
    name = uuid.uuid4().hex[:8]
    kafka = isolated_topics(kafka_broker.bootstrap, f"dash-{name}")
    group = f"dashboard-test-{name}"
    cause_a_dead_letter(kafka, lake_settings, group)
    path = root / "warehouse" / "stockpipe.duckdb"
    path.parent.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STOCKPIPE_") or k == "STOCKPIPE_CACHE_DIR"},
        "STOCKPIPE_LAKE__URL": lake_settings.url,
        "STOCKPIPE_WAREHOUSE__TARGET": "duckdb",
        "STOCKPIPE_WAREHOUSE__DUCKDB_PATH": str(path),
        "STOCKPIPE_WAREHOUSE__DBT_PROJECT_DIR": str(REPO / "dbt"),
        "STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "STOCKPIPE_KAFKA__TOPIC_QUOTES": kafka.topic_quotes,
        "STOCKPIPE_KAFKA__TOPIC_TRADES": kafka.topic_trades,
        "STOCKPIPE_KAFKA__TOPIC_DLQ": kafka.topic_dlq,
        "STOCKPIPE_KAFKA__TOPIC_HEARTBEATS": kafka.topic_heartbeats,
        "STOCKPIPE_DASHBOARD__CONSUMER_GROUP": group,
        "STOCKPIPE_DASHBOARD__SNAPSHOT_DIR": str(root / "snapshots"),
        "STOCKPIPE_DASHBOARD__CACHE_TTL_S": "5",
        # The tests look for a write's effect at once.
        "STOCKPIPE_DASHBOARD__SNAPSHOT_REFRESH_S": "0",
        "STOCKPIPE_DASHBOARD__SNAPSHOT_GRACE_S": "0",
        "DBT_TARGET_PATH": str(root / "dbt-target"),
        "DBT_LOG_PATH": str(root / "dbt-logs"),
    }
    built = BuiltWarehouse(path, lake, kafka, group, env)
    built.check("load", "bronze")
    built.check("load", "dbt-build")
    return built


@dataclass
class Dashboard:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="session")
def dashboard(built_warehouse: BuiltWarehouse, work_dir: Path) -> Iterator[Dashboard]:
    """`stockpipe dashboard` serving the built warehouse on a free loopback port."""
    port = free_port()
    log = work_dir / "server.log"
    with log.open("wb") as out:
        command = [str(Path(sys.executable).with_name("stockpipe")), "dashboard", "--port", str(port)]
        proc = subprocess.Popen(
            [*command, "--address", "127.0.0.1"], env=built_warehouse.env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:  # noqa: S310 - loopback
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, f"the dashboard exited:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"the dashboard did not come up:\n{log.read_text()[-4000:]}"
            time.sleep(0.5)
        yield Dashboard(url, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: run `make prereqs` as root (installs Debian's chromium) or apt-get it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
