"""The new `make chaos` scenarios at a small, bounded size: every record counted in the lake and in bronze."""

from __future__ import annotations

import random
from pathlib import Path

from stockpipe_dev.bench.chaos import fuzz_scenario, rebalance_storm
from stockpipe_dev.localservices.kafka import KafkaBroker


def test_rebalance_storm_loses_and_duplicates_nothing(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    scenario = rebalance_storm(kafka_broker, tmp_path, records=20_000, rng=random.Random(5), every_s=2.0)
    assert scenario.produced == 20_000
    assert (scenario.lost, scenario.duplicated) == (0, 0), scenario
    assert (scenario.bronze_lost, scenario.bronze_duplicated) == (0, 0), scenario
    assert scenario.bronze_rows == 20_000


def test_fuzz_scenario_reports_inputs_and_no_crash() -> None:
    scenario = fuzz_scenario(300, seed=11)
    assert scenario.inputs == 300
    assert scenario.crashes == 0
    assert (scenario.lost, scenario.duplicated) == (0, 0), scenario.detail
