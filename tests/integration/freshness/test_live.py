"""The demo's live segment: quotes streamed in real time on a session clock reach gold and are measured.

A regression test: the segment once streamed the *next* session, whose times lie ahead of the wall
clock, so the consumer (judging record times against the Kafka record's own timestamp) dead-lettered
every record and nothing reached gold.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from stockpipe.marketdata import calendar
from stockpipe_dev.demo import live_session_start
from stockpipe_dev.live_segment import measure_live
from tests.integration.freshness.conftest import Pipeline


def test_the_live_session_clock_starts_in_an_open_past_session() -> None:
    day = date(2025, 12, 2)
    start = live_session_start(day)
    assert start < datetime.now(UTC)
    assert start.date() == calendar.previous_session(day)
    assert calendar.is_open(start)


def test_a_live_segment_reaches_gold_and_measures_its_latency(pipeline: Pipeline, tmp_path: Path) -> None:
    start = live_session_start(date(2025, 12, 3))
    result = measure_live(
        pipeline.kafka, pipeline.lake_settings, pipeline.warehouse, ["AAPL", "MSFT"], start, 20.0, tmp_path
    )
    assert result["rows_measured"] > 0, result
    assert 0 < result["fetched_to_gold_p50_s"] <= result["fetched_to_gold_max_s"]
