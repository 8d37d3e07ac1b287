"""Lake -> bronze on DuckDB with a local lake: ledger, idempotence, dedup, atomic batches, schema version."""

# Queries name tables and columns defined in the code.
# ruff: noqa: S608

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stockpipe.batch import jobs
from stockpipe.batch.settings import HistorySettings
from stockpipe.contracts.bars import daily_bars_table
from stockpipe.contracts.messages import QUOTE_V1
from stockpipe.lake.layout import StreamObject, daily_bar_key
from stockpipe.lake.store import Lake
from stockpipe.marketdata import calendar
from stockpipe.marketdata.history import SyntheticHistory
from stockpipe.marketdata.ratelimit import RateBudget
from stockpipe.marketdata.synthetic import SyntheticMarket
from stockpipe.settings import LakeSettings, load_settings
from stockpipe.warehouse import ddl
from stockpipe.warehouse.datasets import Dataset
from stockpipe.warehouse.duckdb_target import DuckDBTarget, ParquetScanReader
from stockpipe.warehouse.listing import LakeObject
from stockpipe.warehouse.loader import BronzeLoader, LoadError
from stockpipe_dev.bench import lakegen

SESSION = date(2025, 1, 3)
SYMBOLS = ["AAPL", "MSFT", "BRK.B"]


class CountingReader(ParquetScanReader):
    """The production reader, remembering which objects it was asked to read."""

    def __init__(self, lake: Lake) -> None:
        super().__init__(lake.root)
        self.read_keys: list[str] = []

    def open(
        self, conn: duckdb.DuckDBPyConnection, dataset: Dataset, objects: Sequence[LakeObject], name: str
    ) -> dict[str, int]:
        self.read_keys += [o.key for o in objects]
        return super().open(conn, dataset, objects, name)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(LakeSettings(url=f"file://{tmp_path / 'lake'}"))


def count(target: DuckDBTarget, table: str) -> int:
    row = target.conn.execute(f"SELECT count(*) FROM bronze.{table}").fetchone()
    assert row is not None
    return int(row[0])


def snapshot(target: DuckDBTarget) -> dict[str, list[tuple[object, ...]]]:
    tables = ["quotes", "trades", "daily_bars", "dlq", "load_ledger", "schema_version"]
    return {t: target.conn.execute(f"SELECT * FROM bronze.{t} ORDER BY ALL").fetchall() for t in tables}


def write_bar(lake: Lake, symbol: str, day: date, close: float, fetched_at: datetime) -> None:
    table = daily_bars_table(
        {
            "symbol": [symbol],
            "date": [day],
            "open": [close],
            "high": [close + 1],
            "low": [close - 1],
            "close": [close],
            "volume": [1000],
            "source": ["synthetic"],
            "fetched_at": [fetched_at],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    lake.write_atomic(daily_bar_key(day, symbol), sink.getvalue())


def test_load_mirrors_the_lake_and_a_second_load_changes_nothing(lake: Lake, tmp_path: Path) -> None:
    market = SyntheticMarket()
    offsets = lakegen.Offsets.start()
    keys = lakegen.write_session(lake, market, SYMBOLS, SESSION, offsets, quote_every_minutes=5, trades_per_minute=1)
    bar_keys = lakegen.write_daily_bars(lake, market, SYMBOLS, [date(2025, 1, 2), SESSION])
    rejects = [("missing_field:price", "quotes", 0, 7, b'{"symbol": "AAPL"}', datetime(2025, 1, 3, 15, tzinfo=UTC))]
    dlq_keys = lakegen.write_dlq(lake, rejects, offsets)

    with DuckDBTarget(tmp_path / "wh.duckdb", lake) as target:
        first = BronzeLoader(lake, target).run()
        assert first.loaded_objects == len(keys["quotes"]) + len(keys["trades"]) + len(bar_keys) + len(dlq_keys)
        assert first.rows == {"quotes": 3 * 78, "trades": 3 * 390, "daily_bars": 6, "dlq": 1}
        assert count(target, "quotes") == 3 * 78
        assert count(target, "trades") == 3 * 390
        assert count(target, "daily_bars") == 6
        assert count(target, "load_ledger") == first.loaded_objects
        # Every row says where it came from and which load wrote it.
        row = target.conn.execute(
            "SELECT count(DISTINCT source_file), min(load_id), max(load_id) FROM bronze.quotes"
        ).fetchone()
        assert row == (len(keys["quotes"]), first.load_id, first.load_id)
        before = snapshot(target)

        second = BronzeLoader(lake, target).run()
        assert (second.pending, second.loaded_objects, second.batches) == (0, 0, 0)
        assert snapshot(target) == before


def test_rows_duplicated_across_objects_are_merged_on_the_natural_key(lake: Lake, tmp_path: Path) -> None:
    """A quote polled twice (Finnhub's stale t) is one row: the newest fetch wins."""
    schema = QUOTE_V1.lake_schema()
    ts = datetime(2025, 1, 3, 15, 0, tzinfo=UTC)

    def quote(fetched_s: int, price: float, offset: int) -> dict[str, object]:
        return {"symbol": "AAPL", "quote_ts": ts, "fetched_at": datetime(2025, 1, 3, 15, 0, fetched_s, tzinfo=UTC),
                "source": "finnhub", "price": price, "change": None, "change_pct": None, "day_high": 200.0,
                "day_low": 190.0, "day_open": 195.0, "prev_close": 194.0, "kafka_partition": 0,
                "kafka_offset": offset}  # fmt: skip

    for first, rows in ((0, [quote(5, 196.0, 0), quote(20, 197.0, 1)]), (2, [quote(35, 198.0, 2)])):
        obj = StreamObject("quotes", SESSION, "quotes", 0, first, first + len(rows) - 1)
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), sink)
        lake.write_atomic(obj.key, sink.getvalue())

    with DuckDBTarget(tmp_path / "wh.duckdb", lake) as target:
        report = BronzeLoader(lake, target).run()
        assert report.rows == {"quotes": 3}
        merged = target.conn.execute("SELECT price, source_file FROM bronze.quotes").fetchall()
        assert merged == [
            (198.0, "raw/quotes/dt=2025-01-03/quotes+0+00000000000000000002+00000000000000000002.parquet")
        ]


def test_a_changed_object_is_read_again_and_the_latest_load_wins(lake: Lake, tmp_path: Path) -> None:
    write_bar(lake, "AAPL", SESSION, 100.0, datetime(2025, 1, 3, 23, tzinfo=UTC))
    write_bar(lake, "MSFT", SESSION, 300.0, datetime(2025, 1, 3, 23, tzinfo=UTC))
    with DuckDBTarget(tmp_path / "wh.duckdb", lake) as target:
        first = BronzeLoader(lake, target).run()
        # A restated bar: the batch job fetched the session again and rewrote the object.
        write_bar(lake, "AAPL", SESSION, 101.5, datetime(2025, 1, 4, 1, tzinfo=UTC))
        reader = CountingReader(lake)
        target.reader = reader
        second = BronzeLoader(lake, target).run()
        assert reader.read_keys == [daily_bar_key(SESSION, "AAPL")]
        rows = target.conn.execute("SELECT symbol, close, load_id FROM bronze.daily_bars ORDER BY symbol").fetchall()
        assert rows == [("AAPL", 101.5, second.load_id), ("MSFT", 300.0, first.load_id)]
        ledger = target.conn.execute(
            "SELECT load_id FROM bronze.load_ledger WHERE object_key = ?", [daily_bar_key(SESSION, "AAPL")]
        ).fetchall()
        assert ledger == [(second.load_id,)]


def test_a_batch_that_fails_half_way_leaves_nothing_behind(lake: Lake, tmp_path: Path) -> None:
    """Quotes merge first, then a trade object with a null symbol breaks the batch: all of it rolls back."""
    market = SyntheticMarket()
    offsets = lakegen.Offsets.start()
    lakegen.write_stream(lake, "quotes", "quotes", lakegen.quotes_table(market, ["AAPL"], SESSION, 30), "quote_ts",
                         offsets)  # fmt: skip
    trades = lakegen.trades_table(market, ["AAPL"], SESSION, 1).slice(0, 10)
    bad = trades.set_column(0, pa.field("symbol", pa.string()), pa.array([None] * 10, pa.string()))
    bad_keys = lakegen.write_stream(lake, "trades", "trades", bad, "trade_ts", offsets)

    with DuckDBTarget(tmp_path / "wh.duckdb", lake) as target:
        with pytest.raises(LoadError, match="rolled back"):
            BronzeLoader(lake, target).run()
        assert count(target, "quotes") == 0
        assert count(target, "trades") == 0
        assert count(target, "load_ledger") == 0

        # The producer's bug is fixed and the object rewritten: the next load takes everything.
        fixed_keys = lakegen.write_stream(lake, "trades", "trades", trades, "trade_ts", lakegen.Offsets.start())
        assert fixed_keys == bad_keys
        report = BronzeLoader(lake, target).run()
        assert report.rows == {"quotes": 13, "trades": 10}
        assert count(target, "load_ledger") == report.loaded_objects


def test_batches_are_transactions_of_bounded_size(lake: Lake, tmp_path: Path) -> None:
    for i, symbol in enumerate(["A", "B", "C", "D", "E"]):
        write_bar(lake, symbol, SESSION, 10.0 + i, datetime(2025, 1, 3, 23, tzinfo=UTC))
    with DuckDBTarget(tmp_path / "wh.duckdb", lake) as target:
        report = BronzeLoader(lake, target, batch_max_objects=2).run()
        assert (report.batches, report.loaded_objects) == (3, 5)
        assert count(target, "daily_bars") == 5


def test_unchanged_local_directories_are_not_listed_again(lake: Lake, tmp_path: Path) -> None:
    write_bar(lake, "AAPL", date(2025, 1, 2), 100.0, datetime(2025, 1, 2, 23, tzinfo=UTC))
    write_bar(lake, "AAPL", SESSION, 101.0, datetime(2025, 1, 3, 23, tzinfo=UTC))
    old = 1_700_000_000  # directories last written long ago: past the racy window
    for day in ("2025-01-02", "2025-01-03"):
        os.utime(Path(lake.path(f"raw/daily_bars/dt={day}")), (old, old))
    with DuckDBTarget(tmp_path / "wh.duckdb", lake) as target:
        first = BronzeLoader(lake, target).run()
        assert (first.listed, first.skipped_dirs) == (2, 0)
        assert len(target.noted_dirs()) == 2

        second = BronzeLoader(lake, target).run()
        assert (second.listed, second.skipped_dirs, second.loaded_objects) == (0, 2, 0)

        # A new object lands in one directory (an atomic rename changes its mtime): only it is listed.
        write_bar(lake, "MSFT", SESSION, 300.0, datetime(2025, 1, 3, 23, tzinfo=UTC))
        third = BronzeLoader(lake, target).run()
        assert (third.listed, third.skipped_dirs, third.loaded_objects) == (2, 1, 1)


def test_a_directory_written_just_now_is_not_noted(lake: Lake, tmp_path: Path) -> None:
    """Its mtime may not move for a write in the same clock tick, so it must be listed again next time."""
    write_bar(lake, "AAPL", SESSION, 100.0, datetime(2025, 1, 3, 23, tzinfo=UTC))
    with DuckDBTarget(tmp_path / "wh.duckdb", lake) as target:
        BronzeLoader(lake, target).run()
        assert target.noted_dirs() == {}
        assert BronzeLoader(lake, target).run().listed == 1


def test_schema_is_versioned_and_newer_warehouses_are_refused(lake: Lake, tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    with DuckDBTarget(path, lake) as target:
        target.ensure_schema()
        target.ensure_schema()  # idempotent
        versions = target.conn.execute("SELECT version FROM bronze.schema_version ORDER BY 1").fetchall()
        assert versions == [(v,) for v in range(1, ddl.CODE_VERSION + 1)]
        target.conn.execute(
            "INSERT INTO bronze.schema_version VALUES (?, 'from the future', get_current_timestamp())",
            [ddl.CODE_VERSION + 1],
        )
    with DuckDBTarget(path, lake) as target, pytest.raises(ddl.SchemaVersionError, match="upgrade stockpipe"):
        BronzeLoader(lake, target).run()


def test_a_lake_with_both_daily_bar_layouts_gives_one_row_per_symbol_and_day(lake: Lake, tmp_path: Path) -> None:
    # An older lake: one object per symbol and day, for December...
    december = calendar.sessions_between(date(2024, 12, 2), date(2024, 12, 31))
    old_keys = lakegen.write_daily_bars(lake, SyntheticMarket(), SYMBOLS, december)
    # ...then the history jobs of today's layout over a range that overlaps it (and a gap filled later).
    settings = load_settings(HistorySettings, lake=lake.settings, history_symbols=SYMBOLS)
    provider = SyntheticHistory(RateBudget(per_minute=100_000, per_second=100_000))
    backfill = jobs.backfill(settings, date(2024, 12, 16), date(2025, 1, 10), refetch=True, provider=provider)
    daily = jobs.daily(settings, date(2025, 1, 13), provider=provider)
    assert (backfill.objects_written, daily.objects_written) == (1, 1)
    january = calendar.sessions_between(date(2025, 1, 2), date(2025, 1, 13))
    expected = {(s, d) for s in SYMBOLS for d in [*december, *january]}

    with DuckDBTarget(tmp_path / "wh.duckdb", lake) as target:
        report = BronzeLoader(lake, target).run()
        assert report.loaded_objects == len(old_keys) + 2
        rows = target.conn.execute("SELECT symbol, date FROM bronze.daily_bars").fetchall()
        assert len(rows) == len(set(rows))  # exactly one row per (symbol, date)
        assert set(rows) == expected
        # Where both layouts hold a bar, bronze has one of them, with the same prices (same market).
        both = target.conn.execute(
            "SELECT count(*) FROM bronze.daily_bars WHERE date BETWEEN DATE '2024-12-16' AND DATE '2024-12-31'"
        ).fetchone()
        assert both == (len(SYMBOLS) * len([d for d in december if d >= date(2024, 12, 16)]),)
        assert BronzeLoader(lake, target).run().loaded_objects == 0
