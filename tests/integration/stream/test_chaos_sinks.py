"""The sinks' chaos scenarios at a small, bounded size: every record counted in the lake and in bronze."""

from __future__ import annotations

import random
from pathlib import Path

from stockpipe_dev.bench.chaos_sinks import dlq_refused, lake_outage_no_restart
from stockpipe_dev.localservices.kafka import KafkaBroker
from tests.integration.stream.support import exactly_once


def test_a_dlq_refusing_dead_letters_loses_none_and_puts_none_in_the_lake(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    scenario = dlq_refused(kafka_broker, tmp_path, 4_000, random.Random(7), refuse_s=8.0, bad=20)
    exactly_once(scenario)
    assert "20 bad messages: 20 in the DLQ" in scenario.detail, scenario.detail
    assert "Slack incidents 1, recoveries 1, exit code 0" in scenario.detail, scenario.detail


def test_a_lake_outage_within_the_retry_budget_restarts_nothing(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    # Scaled down with the outage: the stall limit, and the failed writes (~13 s each) that open the incident.
    scenario = lake_outage_no_restart(
        kafka_broker, tmp_path, 4_000, random.Random(8), outage_s=30.0, stall_s=5.0, alert_after_retries=1
    )
    exactly_once(scenario)
    assert " 0 failures, restarts due 0" in scenario.detail, scenario.detail
    assert "Slack incidents 1, recoveries 1, exit code 0" in scenario.detail, scenario.detail
