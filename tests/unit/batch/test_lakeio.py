from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

from stockpipe.batch import lakeio
from stockpipe.contracts.bars import DAILY_BAR_SCHEMA
from stockpipe.lake.layout import daily_bar_key
from stockpipe.lake.store import Lake
from stockpipe.marketdata.history import HistoryBar
from stockpipe.settings import LakeSettings

BARS = [
    HistoryBar("AAPL", date(2025, 11, 26), 10.0, 11.0, 9.5, 10.5, 1200.0),
    HistoryBar("AAPL", date(2025, 11, 28), 10.5, 10.9, 10.1, 10.8, 800.4),
]


def lake_at(path: Path) -> Lake:
    return Lake(LakeSettings(url=f"file://{path}"))


def test_one_object_per_bar_with_the_contract_schema() -> None:
    encoded = lakeio.encode_bars(BARS, "finnhub")
    assert [k for k, _ in encoded] == [daily_bar_key(b.day, "AAPL") for b in BARS]
    table = lakeio.decode(encoded[1][1])
    assert table.schema.equals(DAILY_BAR_SCHEMA)
    row = table.to_pylist()[0]
    assert row["date"] == date(2025, 11, 28)
    assert row["volume"] == 800
    assert row["source"] == "finnhub"
    # fetched_at is the session's close: 13:00 New York on the early close after Thanksgiving.
    assert row["fetched_at"] == datetime(2025, 11, 28, 18, 0, tzinfo=UTC)


def test_same_bar_same_bytes_whatever_else_was_fetched_with_it() -> None:
    alone = lakeio.encode_bars(BARS[1:], "finnhub")
    together = lakeio.encode_bars(BARS, "finnhub")
    assert alone[0] == together[1]
    assert lakeio.encode_bars(BARS, "finnhub") == together
    assert lakeio.encode_bars(BARS, "tiingo")[0][1] != together[0][1]


def test_same_content_compares_bytes(tmp_path: Path) -> None:
    lake = lake_at(tmp_path)
    (key, data), (_, other) = lakeio.encode_bars(BARS, "finnhub")
    assert not lakeio.same_content(lake, None, data)
    lake.write_atomic(key, data)
    info = next(iter(lake.walk("raw")))
    assert lakeio.same_content(lake, info, data)
    assert not lakeio.same_content(lake, info, other)


def test_listing_finds_objects_per_day_and_symbol(tmp_path: Path) -> None:
    lake = lake_at(tmp_path)
    for key, data in lakeio.encode_bars(BARS, "finnhub"):
        lake.write_atomic(key, data)
    listing = lakeio.list_daily_bars(lake, [date(2025, 11, 26), date(2025, 11, 28), date(2025, 12, 1)])
    assert {d: sorted(v) for d, v in listing.items()} == {
        date(2025, 11, 26): ["AAPL"],
        date(2025, 11, 28): ["AAPL"],
        date(2025, 12, 1): [],
    }


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
