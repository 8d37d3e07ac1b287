"""Daily bars in the lake: deterministic Parquet objects, what the lake already holds, watermarks.

Same input, same bytes. `fetched_at` is required by the contract, but a wall-clock value would
give every re-run new bytes: a new ETag that the bronze load ledger would load again, and no way
to tell a correction from a re-fetch. So `fetched_at` is derived from the bar itself: the instant
its session closed (13:00 New York on early closes), the earliest moment a provider can serve the
final bar. A re-fetch of an unchanged bar thus gives identical bytes and is not written at all
(`same_content`); a provider's correction gives different bytes and overwrites the object.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from stockpipe.contracts.bars import DAILY_BAR_SCHEMA
from stockpipe.lake import layout
from stockpipe.lake.store import Lake, ObjectInfo
from stockpipe.marketdata import calendar
from stockpipe.marketdata.history import HistoryBar

WATERMARKS_KEY = "state/history/watermarks.json"


@functools.lru_cache(maxsize=8192)
def as_of(day: date) -> datetime:
    """The bar's `fetched_at`: its session's close in UTC."""
    s = calendar.session(day)
    if s is None:
        raise ValueError(f"{day} is not an NYSE session")
    return s.close_utc


def bars_table(bars: Sequence[HistoryBar], source: str) -> pa.Table:
    return pa.Table.from_pydict(
        {
            "symbol": [b.symbol for b in bars],
            "date": [b.day for b in bars],
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            # Checked finite and >= 0; some providers send volumes as floats.
            "volume": [round(b.volume) for b in bars],
            "source": [source] * len(bars),
            "fetched_at": [as_of(b.day) for b in bars],
        },
        schema=DAILY_BAR_SCHEMA,
    )


def encode_one(table: pa.Table) -> bytes:
    """One object's bytes: a one-row table (a slice encodes exactly like a table built from that row)."""
    buf = io.BytesIO()
    # A dictionary page is pure overhead for one row (a third of the encoding time).
    pq.write_table(table, buf, compression="snappy", use_dictionary=False)
    return buf.getvalue()


def encode_bars(bars: Sequence[HistoryBar], source: str) -> list[tuple[str, bytes]]:
    """(lake key, Parquet bytes) of each bar: one object per (session, symbol)."""
    table = bars_table(bars, source)
    return [(layout.daily_bar_key(b.day, b.symbol), encode_one(table.slice(i, 1))) for i, b in enumerate(bars)]


def decode(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def _symbol_of(key: str) -> str:
    return key.rsplit("/", 1)[-1].removesuffix(".parquet")


def list_daily_bars(lake: Lake, days: Iterable[date], workers: int = 8) -> dict[date, dict[str, ObjectInfo]]:
    """What the lake holds for each day: symbol -> object. One listing per day, a few at a time."""
    wanted = sorted(set(days))

    def one(day: date) -> dict[str, ObjectInfo]:
        return {
            _symbol_of(info.key): info
            for info in lake.walk(layout.dt_prefix(layout.DAILY_BARS, day))
            if info.key.endswith(".parquet")
        }

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(wanted) or 1))) as pool:
        return dict(zip(wanted, pool.map(one, wanted), strict=True))


def same_content(lake: Lake, info: ObjectInfo | None, data: bytes) -> bool:
    """Whether an existing object already holds exactly these bytes (then it is not rewritten)."""
    if info is None or info.size != len(data):
        return False
    if not lake.is_local and "-" not in info.etag:
        # A single-PUT object's S3 ETag is the MD5 of its bytes: no need to read it back.
        return info.etag == hashlib.md5(data, usedforsecurity=False).hexdigest()
    return lake.read(info.key) == data


class Watermarks:
    """Per symbol, the newest session whose bar is in the lake: where the daily load resumes.

    One JSON object in the lake, written atomically and only when it changes (so a re-run leaves
    it byte for byte as it was). Writers merge with the stored marks before saving, but that
    read-modify-write is no transaction: run the history jobs one at a time (one Airflow pool).
    """

    def __init__(self, lake: Lake, marks: dict[str, date] | None = None) -> None:
        self.lake = lake
        self.marks: dict[str, date] = dict(marks or {})
        self._loaded = dict(self.marks)

    @classmethod
    def load(cls, lake: Lake) -> Watermarks:
        if not lake.exists(WATERMARKS_KEY):
            return cls(lake)
        doc = json.loads(lake.read(WATERMARKS_KEY))
        return cls(lake, {s: date.fromisoformat(d) for s, d in doc.get("daily_bars", {}).items()})

    def get(self, symbol: str) -> date | None:
        return self.marks.get(symbol)

    def advance(self, symbol: str, day: date) -> None:
        """Move forward only: a backfill of older sessions never moves the daily load back."""
        current = self.marks.get(symbol)
        if current is None or day > current:
            self.marks[symbol] = day

    def to_json(self) -> bytes:
        doc = {"version": 1, "daily_bars": {s: d.isoformat() for s, d in sorted(self.marks.items())}}
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()

    def save(self) -> bool:
        """Write when something moved; True if it wrote."""
        if self.marks == self._loaded:
            return False
        # Merge with what is there now, to narrow the window in which two writers could lose a mark.
        for symbol, day in Watermarks.load(self.lake).marks.items():
            self.advance(symbol, day)
        self.lake.write_atomic(WATERMARKS_KEY, self.to_json())
        self._loaded = dict(self.marks)
        return True
