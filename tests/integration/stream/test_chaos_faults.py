"""The second wave of `make chaos` at a small, bounded size: every record counted in the lake and in bronze."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest

from stockpipe.settings import LakeSettings
from stockpipe_dev.bench.chaos_faults import kafka_link_faults, s3_link_faults, slow_s3, spool_full, zombie_writer
from stockpipe_dev.localservices.kafka import KafkaBroker
from tests.integration.stream.support import exactly_once


def test_a_zombie_writer_neither_overwrites_nor_duplicates(
    kafka_broker: KafkaBroker, tmp_path: Path, s3_lake: LakeSettings
) -> None:
    scenario = zombie_writer(kafka_broker, tmp_path, 6_000, random.Random(3), stops=2, file_records=300, lake=s3_lake)
    exactly_once(scenario)
    assert "exit codes [0, 0]" in scenario.detail, scenario.detail  # the woken zombie did not crash
    # At least one freeze held a lake call in flight across the takeover.
    assert " 0 of them with a lake call in flight" not in scenario.detail, scenario.detail


def _can_mount_tmpfs(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    if os.geteuid() != 0:
        return False
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], check=False).returncode == 0
    if ok:
        subprocess.run(["umount", str(probe)], check=True)
    return ok


def test_a_full_spool_stops_the_consumer_alerts_and_recovers(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    if not _can_mount_tmpfs(tmp_path):
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    scenario = spool_full(kafka_broker, tmp_path, 4_000, random.Random(4), full_s=8.0)
    exactly_once(scenario)
    assert "Slack incidents 1, recoveries 1, exit code 0" in scenario.detail, scenario.detail


def test_latency_and_resets_on_the_kafka_link(tmp_path: Path) -> None:
    exactly_once(kafka_link_faults(tmp_path, 5_000, random.Random(5), span_s=15.0))


def test_latency_and_resets_on_the_s3_link(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    exactly_once(s3_link_faults(kafka_broker, tmp_path, 5_000, random.Random(6), span_s=15.0))


def test_a_slow_s3_answering_503_slowdown(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    scenario = slow_s3(kafka_broker, tmp_path, 5_000, random.Random(7), ratio=0.2, span_s=10.0)
    exactly_once(scenario)
    assert not scenario.detail.startswith("0 of"), scenario.detail
