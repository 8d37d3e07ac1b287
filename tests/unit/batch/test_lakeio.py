from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow.parquet as pq

from stockpipe.batch import lakeio
from stockpipe.contracts.bars import DAILY_BAR_SCHEMA
from stockpipe.lake.layout import DAILY_BARS, BatchObject, daily_bar_key
from stockpipe.lake.store import Lake
from stockpipe.marketdata.history import HistoryBar
from stockpipe.settings import LakeSettings

BARS = [
    HistoryBar("AAPL", date(2025, 11, 26), 10.0, 11.0, 9.5, 10.5, 1200.0),
    HistoryBar("AAPL", date(2025, 11, 28), 10.5, 10.9, 10.1, 10.8, 800.4),
]


def lake_at(path: Path) -> Lake:
    return Lake(LakeSettings(url=f"file://{path}"))


def test_a_table_in_the_contract_schema_sorted_by_symbol_and_day() -> None:
    msft = HistoryBar("MSFT", date(2025, 11, 26), 20.0, 21.0, 19.5, 20.5, 10.0)
    table = lakeio.decode(lakeio.encode(lakeio.bars_table([BARS[1], msft, BARS[0]], "finnhub")))
    assert table.schema.equals(DAILY_BAR_SCHEMA)
    rows = table.to_pylist()
    assert [(r["symbol"], r["date"]) for r in rows] == [
        ("AAPL", date(2025, 11, 26)),
        ("AAPL", date(2025, 11, 28)),
        ("MSFT", date(2025, 11, 26)),
    ]
    row = rows[1]
    assert row["volume"] == 800
    assert row["source"] == "finnhub"
    # fetched_at is the session's close: 13:00 New York on the early close after Thanksgiving.
    assert row["fetched_at"] == datetime(2025, 11, 28, 18, 0, tzinfo=UTC)


def test_same_bars_same_bytes_whatever_their_order() -> None:
    one = lakeio.encode(lakeio.bars_table(BARS, "finnhub"))
    assert lakeio.encode(lakeio.bars_table(BARS[::-1], "finnhub")) == one
    assert lakeio.encode(lakeio.bars_table(BARS, "tiingo")) != one
    # No wall clock in the file: its only key-value metadata is Arrow's schema.
    assert set(pq.ParquetFile(io.BytesIO(one)).metadata.metadata) == {b"ARROW:schema"}


def test_merge_keeps_old_rows_the_new_ones_lack_and_new_rows_win() -> None:
    old = lakeio.bars_table(BARS, "finnhub")
    corrected = HistoryBar("AAPL", date(2025, 11, 28), 10.5, 11.9, 10.1, 11.8, 900.0)
    other = HistoryBar("MSFT", date(2025, 11, 26), 20.0, 21.0, 19.5, 20.5, 10.0)
    merged = lakeio.merge(old, lakeio.bars_table([corrected, other], "finnhub")).to_pylist()
    assert [(r["symbol"], r["date"], r["close"]) for r in merged] == [
        ("AAPL", date(2025, 11, 26), 10.5),
        ("AAPL", date(2025, 11, 28), 11.8),
        ("MSFT", date(2025, 11, 26), 20.5),
    ]


def test_same_content_compares_bytes(tmp_path: Path) -> None:
    lake = lake_at(tmp_path)
    key = daily_bar_key(date(2025, 11, 28), "AAPL")
    data, other = (lakeio.encode(lakeio.bars_table(b, "finnhub")) for b in (BARS, BARS[:1]))
    assert not lakeio.same_content(lake, None, data)
    lake.write_atomic(key, data)
    info = next(iter(lake.walk("raw")))
    assert lakeio.same_content(lake, info, data)
    assert not lakeio.same_content(lake, info, other)


def test_holdings_read_both_layouts(tmp_path: Path) -> None:
    lake = lake_at(tmp_path)
    # The older layout: one object per symbol and day, named after the symbol.
    for bar in BARS:
        lake.write_atomic(daily_bar_key(bar.day, "AAPL"), lakeio.encode(lakeio.bars_table([bar], "finnhub")))
    # A job object whose interval overlaps the range, one that ends before it.
    msft = [HistoryBar("MSFT", d, 20.0, 21.0, 19.5, 20.5, 10.0) for d in (date(2025, 11, 24), date(2025, 12, 1))]
    job = BatchObject(DAILY_BARS, "backfill", date(2025, 11, 24), date(2025, 12, 1), 0)
    lake.write_atomic(job.key, lakeio.encode(lakeio.bars_table(msft, "finnhub")))
    older = BatchObject(DAILY_BARS, "daily", date(2025, 11, 21), date(2025, 11, 21), 0)
    lake.write_atomic(older.key, lakeio.encode(lakeio.bars_table([replace(msft[0], day=date(2025, 11, 21))], "x")))

    held = lakeio.list_daily_bars(lake, date(2025, 11, 26), date(2025, 11, 28))
    assert held.present == {"AAPL": {date(2025, 11, 26), date(2025, 11, 28)}}
    assert set(held.objects) == {job.key}  # the job objects from the range's first day on
    wider = lakeio.list_daily_bars(lake, date(2025, 11, 21), date(2025, 12, 1))
    assert wider.sessions("MSFT") == {date(2025, 11, 21), date(2025, 11, 24), date(2025, 12, 1)}
    assert not lakeio.list_daily_bars(lake, date(2025, 11, 26), date(2025, 11, 28), contents=False).present.get("MSFT")


def test_job_object_names_parse_back() -> None:
    obj = BatchObject(DAILY_BARS, "gaps", date(2025, 1, 2), date(2025, 3, 31), 7)
    assert obj.key == "raw/daily_bars/dt=2025-03-31/gaps+2025-01-02+2025-03-31+00007.parquet"
    assert BatchObject.parse(obj.key) == obj
    assert BatchObject.parse("raw/daily_bars/dt=2025-03-30/gaps+2025-01-02+2025-03-31+00007.parquet") is None
    assert BatchObject.parse(daily_bar_key(date(2025, 1, 2), "AAPL")) is None


def test_watermarks_only_move_forward_and_are_written_only_on_change(tmp_path: Path) -> None:
    lake = lake_at(tmp_path)
    marks = lakeio.Watermarks.load(lake)
    assert marks.get("AAPL") is None
    assert not marks.save()
    marks.advance("AAPL", date(2025, 11, 28))
    marks.advance("AAPL", date(2025, 1, 2))
    assert marks.save()
    stored = lake.read(lakeio.WATERMARKS_KEY)
    assert json.loads(stored)["daily_bars"] == {"AAPL": "2025-11-28"}
    again = lakeio.Watermarks.load(lake)
    again.advance("AAPL", date(2025, 11, 26))
    assert not again.save()


def test_watermarks_merge_with_what_another_writer_saved(tmp_path: Path) -> None:
    lake = lake_at(tmp_path)
    first, second = lakeio.Watermarks.load(lake), lakeio.Watermarks.load(lake)
    first.advance("AAPL", date(2025, 11, 28))
    first.save()
    second.advance("MSFT", date(2025, 11, 26))
    second.save()
    assert lakeio.Watermarks.load(lake).marks == {"AAPL": date(2025, 11, 28), "MSFT": date(2025, 11, 26)}
