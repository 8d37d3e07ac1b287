"""Synthetic lake data in the exact layout and schemas the consumer and the batch jobs write.

Used by the warehouse tests, the benchmark and local demos: quotes and trades as stream files
(`raw/<dataset>/dt=.../<topic>+<partition>+<first>+<last>.parquet`, cut by partition and record-time
window like the consumer cuts them), daily bars as `raw/daily_bars/dt=.../<symbol>.parquet`, and
dead letters. Every value comes from SyntheticMarket, so bars, quotes and trades agree.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pyarrow as pa

from stockpipe.contracts.bars import ADJUSTMENT_COLUMNS, daily_bars_table
from stockpipe.contracts.messages import DLQ_V1, QUOTE_V1, TRADE_V1
from stockpipe.lake.layout import StreamObject, daily_bar_key
from stockpipe.lake.parquet import parquet_bytes
from stockpipe.lake.store import Lake
from stockpipe.marketdata import calendar
from stockpipe.marketdata.history.synthetic_history import synthetic_bars
from stockpipe.marketdata.synthetic import SyntheticMarket

PARTITIONS = 3
WINDOW_S = 900


@dataclass
class Offsets:
    """Next Kafka offset per (topic, partition): keeps offsets unique across calls, like a real log."""

    next: dict[tuple[str, int], int]

    @classmethod
    def start(cls) -> Offsets:
        return cls(next={})

    def take(self, topic: str, partition: int, n: int) -> np.ndarray:
        first = self.next.get((topic, partition), 0)
        self.next[(topic, partition)] = first + n
        return np.arange(first, first + n, dtype=np.int64)


def partition_of(symbol: str) -> int:
    return zlib.crc32(symbol.encode()) % PARTITIONS  # stable, like the producer's key hashing


def write_stream(
    lake: Lake, dataset: str, topic: str, table: pa.Table, event_ts: str, offsets: Offsets, window_s: int = WINDOW_S
) -> list[str]:
    """Cut rows into stream files per partition and record-time window; returns the keys written.

    `table` has the lake columns except kafka_partition/kafka_offset and a `_partition` column.
    """
    keys: list[str] = []
    parts = table["_partition"].to_numpy()
    micros = table[event_ts].cast(pa.int64()).to_numpy()
    order = np.lexsort((micros, parts))
    table, parts, micros = table.take(order), parts[order], micros[order]
    windows = micros // (window_s * 1_000_000)
    for p in np.unique(parts):
        idx = np.flatnonzero(parts == p)
        offs = offsets.take(topic, int(p), len(idx))
        rows = table.take(idx).drop_columns(["_partition"])
        rows = rows.append_column(
            pa.field("kafka_partition", pa.int32(), nullable=False), pa.array(np.full(len(idx), p, dtype=np.int32))
        )
        rows = rows.append_column(pa.field("kafka_offset", pa.int64(), nullable=False), pa.array(offs))
        w = windows[idx]
        for window in np.unique(w):
            sel = np.flatnonzero(w == window)
            piece = rows.take(sel)
            obj = StreamObject(
                dataset=dataset,
                dt=datetime.fromtimestamp(int(window) * window_s, UTC).date(),
                topic=topic,
                partition=int(p),
                first_offset=int(offs[sel[0]]),
                last_offset=int(offs[sel[-1]]),
            )
            lake.write_atomic(obj.key, parquet_bytes(piece))
            keys.append(obj.key)
    return keys


def quotes_table(market: SyntheticMarket, symbols: Sequence[str], day: date, every_minutes: int = 1) -> pa.Table:
    """What polling /quote every `every_minutes` during the session returns, for each symbol."""
    session = calendar.session(day)
    if session is None:
        raise ValueError(f"{day} is not an NYSE session")
    cols: dict[str, list[object]] = {n: [] for n in [*QUOTE_V1.field_names, "_partition"]}
    for symbol in symbols:
        path = market.intraday(symbol, day)
        prev_close = market.daily_bar(symbol, calendar.previous_session(day)).close
        highs, lows = np.maximum.accumulate(path.prices), np.minimum.accumulate(path.prices)
        for m in range(0, len(path.prices), every_minutes):
            ts = session.open_utc + timedelta(minutes=m)
            c = float(path.prices[m])
            cols["symbol"].append(symbol)
            cols["quote_ts"].append(ts)
            cols["fetched_at"].append(ts + timedelta(seconds=3))
            cols["source"].append("synthetic")
            cols["price"].append(c)
            cols["change"].append(round(c - prev_close, 2))
            cols["change_pct"].append(round((c - prev_close) / prev_close * 100, 4))
            cols["day_high"].append(float(highs[m]))
            cols["day_low"].append(float(lows[m]))
            cols["day_open"].append(float(path.prices[0]))
            cols["prev_close"].append(prev_close)
            cols["_partition"].append(partition_of(symbol))
    schema = pa.schema([*(f for f in QUOTE_V1.lake_schema() if not f.name.startswith("kafka_")),
                        pa.field("_partition", pa.int32())])  # fmt: skip
    return pa.table(cols, schema=schema)


def trades_table(market: SyntheticMarket, symbols: Sequence[str], day: date, per_minute: int = 2) -> pa.Table:
    """Trades along the intraday path: `per_minute` prints a minute, sizes from the minute's volume."""
    session = calendar.session(day)
    if session is None:
        raise ValueError(f"{day} is not an NYSE session")
    cols: dict[str, list[object]] = {n: [] for n in [*TRADE_V1.field_names, "_partition"]}
    for symbol in symbols:
        path = market.intraday(symbol, day)
        for m in range(len(path.prices)):
            for k in range(per_minute):
                ts = session.open_utc + timedelta(minutes=m, milliseconds=k * (60_000 // per_minute) + 7)
                cols["symbol"].append(symbol)
                cols["trade_ts"].append(ts)
                cols["fetched_at"].append(ts + timedelta(milliseconds=40))
                cols["source"].append("synthetic")
                cols["price"].append(float(path.prices[m]))
                cols["size"].append(float(max(1, int(path.volumes[m]) // (per_minute * 50))))
                cols["seq"].append(0)
                cols["conditions"].append(["@"] if k % 2 == 0 else None)
                cols["_partition"].append(partition_of(symbol))
    schema = pa.schema([*(f for f in TRADE_V1.lake_schema() if not f.name.startswith("kafka_")),
                        pa.field("_partition", pa.int32())])  # fmt: skip
    return pa.table(cols, schema=schema)


def dlq_table(rejects: Iterable[tuple[str, str, int, int, bytes, datetime]]) -> pa.Table:
    """Dead letters from (reason, source topic, partition, offset, original bytes, detected_at)."""
    cols: dict[str, list[object]] = {n: [] for n in [*DLQ_V1.field_names, "_partition"]}
    for reason, topic, partition, offset, original, detected_at in rejects:
        cols["reason"].append(reason)
        cols["source_topic"].append(topic)
        cols["source_partition"].append(partition)
        cols["source_offset"].append(offset)
        cols["original_b64"].append(base64.b64encode(original).decode())
        cols["original_key"].append(None)
        cols["detected_at"].append(detected_at)
        cols["_partition"].append(0)
    schema = pa.schema([*(f for f in DLQ_V1.lake_schema() if not f.name.startswith("kafka_")),
                        pa.field("_partition", pa.int32())])  # fmt: skip
    return pa.table(cols, schema=schema)


def daily_bar_table(market: SyntheticMarket, symbol: str, day: date, source: str = "synthetic") -> pa.Table:
    """The synthetic provider's bar of one session (its split and dividend, adjusted as of that session)."""
    bar = synthetic_bars(market, symbol, day, day)[0]
    fetched = datetime.combine(day, time(23, 0), UTC)
    columns = {name: [getattr(bar, name)] for name in ("open", "high", "low", "close", *ADJUSTMENT_COLUMNS)}
    columns |= {"symbol": [symbol], "date": [day], "volume": [round(bar.volume)], "source": [source]}
    return daily_bars_table(columns | {"fetched_at": [fetched]})


def write_daily_bars(lake: Lake, market: SyntheticMarket, symbols: Sequence[str], days: Iterable[date]) -> list[str]:
    keys = []
    for day in days:
        for symbol in symbols:
            key = daily_bar_key(day, symbol)
            lake.write_atomic(key, parquet_bytes(daily_bar_table(market, symbol, day)))
            keys.append(key)
    return keys


def write_session(
    lake: Lake,
    market: SyntheticMarket,
    symbols: Sequence[str],
    day: date,
    offsets: Offsets,
    quote_every_minutes: int = 1,
    trades_per_minute: int = 2,
) -> dict[str, list[str]]:
    """One session of quotes and trades for the symbols, as the consumer would have written it."""
    return {
        "quotes": write_stream(lake, "quotes", "quotes", quotes_table(market, symbols, day, quote_every_minutes),
                               "quote_ts", offsets),
        "trades": write_stream(lake, "trades", "trades", trades_table(market, symbols, day, trades_per_minute),
                               "trade_ts", offsets),
    }  # fmt: skip


def write_dlq(lake: Lake, rejects: Iterable[tuple[str, str, int, int, bytes, datetime]], offsets: Offsets) -> list[str]:
    return write_stream(lake, "dlq", "dlq", dlq_table(rejects), "detected_at", offsets, window_s=3600)
