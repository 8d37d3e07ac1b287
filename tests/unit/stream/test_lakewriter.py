"""File boundaries depend on the log alone: any batching of the same records cuts the same files."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from stockpipe.contracts.messages import QUOTE_V1
from stockpipe.lake.layout import StreamObject
from stockpipe.lake.parquet import parquet_bytes
from stockpipe.stream.lakewriter import PartitionFiles

START = datetime(2025, 12, 2, 14, 30, tzinfo=UTC)


def rows(offsets: list[int], seconds: list[float]) -> pa.Table:
    n = len(offsets)
    ts = [START + timedelta(seconds=s) for s in seconds]
    return pa.table(
        {
            "symbol": ["AAPL"] * n,
            "quote_ts": ts,
            "fetched_at": ts,
            "source": ["t"] * n,
            "price": [1.0] * n,
            "change": [None] * n,
            "change_pct": [None] * n,
            "day_high": [1.0] * n,
            "day_low": [1.0] * n,
            "day_open": [1.0] * n,
            "prev_close": [1.0] * n,
            "kafka_partition": pa.array([0] * n, pa.int32()),
            "kafka_offset": pa.array(offsets, pa.int64()),
        },
        schema=QUOTE_V1.lake_schema(),
    )


def cut(
    table: pa.Table, splits: list[int], marks: list[tuple[int, datetime]], max_records: int = 7
) -> list[tuple[StreamObject, bytes]]:
    out: list[tuple[StreamObject, bytes]] = []
    files = PartitionFiles(QUOTE_V1, "quotes", 0, 0, 0, max_records, 60, lambda o, b, _n: out.append((o, b)))
    bounds = [0, *splits, table.num_rows]
    for a, b in itertools.pairwise(bounds):
        piece = table.slice(a, b - a)
        offs = piece["kafka_offset"].to_pylist()
        lo, hi = (offs[0], offs[-1]) if offs else (0, -1)
        files.add(piece, [m for m in marks if lo <= m[0] <= hi + 1])
    return out


def test_same_files_whatever_the_batching() -> None:
    rng = random.Random(7)
    seconds = sorted(rng.uniform(0, 600) for _ in range(120))
    seconds[50] = seconds[49] - 90  # a late record stays in the open file
    offsets = [i * 2 for i in range(120)]  # gaps, as rejected or control records leave
    table = rows(offsets, seconds)
    reference = cut(table, [], [])
    for _ in range(20):
        splits = sorted(rng.sample(range(1, 120), rng.randint(1, 30)))
        assert cut(table, splits, []) == reference
    names = [o for o, _ in reference]
    assert all(b.first_offset > a.last_offset for a, b in itertools.pairwise(names))
    assert all(o.last_offset - o.first_offset <= 2 * 6 for o in names)  # at most 7 records each


def test_window_change_closes_a_file_and_late_records_stay() -> None:
    table = rows([0, 1, 2, 3], [0, 30, 10, 61])  # minute 0, 0, 0 (late), then minute 1
    files = cut(table, [], [], max_records=100)
    assert [(o.first_offset, o.last_offset) for o, _ in files] == [(0, 2)]  # minute 1 stays open


def test_watermark_closes_the_open_file() -> None:
    table = rows([0, 1], [0, 5])
    files = cut(table, [], [(2, START + timedelta(minutes=5))], max_records=100)
    assert [(o.first_offset, o.last_offset) for o, _ in files] == [(0, 1)]
    early = cut(table, [], [(2, START + timedelta(seconds=30))], max_records=100)
    assert early == []  # a watermark inside the file's window closes nothing


def test_parquet_bytes_are_deterministic() -> None:
    table = rows([0, 1, 2], [0, 1, 2])
    assert parquet_bytes(table) == parquet_bytes(table)


@pytest.mark.parametrize("bad", [7, 86_401])
def test_window_must_divide_a_day(bad: int) -> None:
    from stockpipe.settings import ConfigError, load_settings
    from stockpipe.stream.consumer import ConsumerSettings

    with pytest.raises(ConfigError, match="window_seconds"):
        load_settings(ConsumerSettings, window_seconds=bad)
