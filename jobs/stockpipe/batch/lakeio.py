"""Daily bars in the lake: deterministic Parquet objects, what the lake already holds, watermarks.

Objects follow the job, not the symbol: a job (its kind and interval) writes one object per chunk of
its symbols (`layout.BatchObject`), so the object count grows with job runs, never with symbols x
days. Each object's rows are sorted by (symbol, date) and encoded with fixed options (Parquet
metadata holds no timestamps), so the same rows always give the same bytes.

Same input, same bytes. `fetched_at` is required by the contract, but a wall-clock value would
give every re-run new bytes: a new ETag that the bronze load ledger would load again, and no way
to tell a correction from a re-fetch. So `fetched_at` is derived from the bar itself: the instant
its session closed (13:00 New York on early closes), the earliest moment a provider can serve the
final bar. A re-fetch of unchanged bars thus gives identical bytes and is not written at all
(`same_content`); a provider's correction gives different bytes and overwrites the object.

A job that writes an object its own earlier run wrote (a retry after some symbols failed, say)
merges its rows into what the object holds (its bars win per (symbol, date)): a retry of fewer
symbols never drops the others' rows.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stockpipe.contracts.bars import DAILY_BAR_SCHEMA
from stockpipe.lake import layout
from stockpipe.lake.store import Lake, ObjectInfo
from stockpipe.marketdata import calendar
from stockpipe.marketdata.history import HistoryBar

WATERMARKS_KEY = "state/history/watermarks.json"
KEY_COLUMNS = ("symbol", "date")


@functools.lru_cache(maxsize=8192)
def as_of(day: date) -> datetime:
    """The bar's `fetched_at`: its session's close in UTC."""
    s = calendar.session(day)
    if s is None:
        raise ValueError(f"{day} is not an NYSE session")
    return s.close_utc


def _column(bars: Sequence[HistoryBar], name: str, source: str) -> list[object]:
    if name == "date":
        return [b.day for b in bars]
    if name == "volume":
        return [round(b.volume) for b in bars]  # checked finite and >= 0; some providers send floats
    if name == "source":
        return [source] * len(bars)
    if name == "fetched_at":
        return [as_of(b.day) for b in bars]
    # Every other contract column is a HistoryBar field of the same name (None when a provider has none).
    return [getattr(b, name, None) for b in bars]


def bars_table(bars: Sequence[HistoryBar], source: str) -> pa.Table:
    """The bars as a contract table, in (symbol, date) order."""
    ordered = sorted(bars, key=lambda b: (b.symbol, b.day))
    return pa.Table.from_pydict(
        {f.name: _column(ordered, f.name, source) for f in DAILY_BAR_SCHEMA}, schema=DAILY_BAR_SCHEMA
    )


def conform(table: pa.Table) -> pa.Table:
    """A table read from the lake in today's contract: columns in order, absent optional ones null."""
    arrays = []
    for f in DAILY_BAR_SCHEMA:
        if f.name in table.column_names:
            arrays.append(table[f.name].cast(f.type))
        elif f.nullable:
            arrays.append(pa.nulls(table.num_rows, f.type))
        else:
            raise ValueError(f"a daily-bar object lacks the required column {f.name!r}")
    return pa.Table.from_arrays(arrays, schema=DAILY_BAR_SCHEMA)


def merge(old: pa.Table, new: pa.Table) -> pa.Table:
    """Rows of `old` whose (symbol, date) `new` lacks, plus all of `new`; in (symbol, date) order."""
    old = conform(old)
    fresh = {(s, d) for s, d in zip(new["symbol"].to_pylist(), new["date"].to_pylist(), strict=True)}
    keep = [(s, d) not in fresh for s, d in zip(old["symbol"].to_pylist(), old["date"].to_pylist(), strict=True)]
    combined = pa.concat_tables([old.filter(pa.array(keep, pa.bool_())), new])
    return combined.take(pc.sort_indices(combined, [(c, "ascending") for c in KEY_COLUMNS]))


def encode(table: pa.Table) -> bytes:
    """An object's bytes: one row group, fixed options; the same rows always give the same bytes."""
    buf = io.BytesIO()
    pq.write_table(
        table,
        buf,
        compression="zstd",
        row_group_size=max(1, table.num_rows),
        write_statistics=True,
        store_schema=True,
    )
    return buf.getvalue()


def decode(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def _symbol_of(key: str) -> str:
    return key.rsplit("/", 1)[-1].removesuffix(".parquet")


@dataclass
class Holdings:
    """What the lake holds of daily bars for a range: sessions per symbol, and the job objects seen."""

    present: dict[str, set[date]] = field(default_factory=dict)
    objects: dict[str, ObjectInfo] = field(default_factory=dict)  # batch-job objects by key

    def sessions(self, symbol: str) -> set[date]:
        return self.present.get(symbol, set())

    def add(self, symbol: str, day: date) -> None:
        self.present.setdefault(symbol, set()).add(day)


def list_daily_bars(lake: Lake, start: date, end: date, *, contents: bool = True, workers: int = 8) -> Holdings:
    """What the lake holds for sessions start..end, in both layouts.

    Older per-symbol-day objects say what they hold by name. Job objects live under their interval's
    last day, so every `dt=` directory from `start` on is listed, and (with `contents`) the symbol
    and date columns of those whose interval overlaps the range are read, a few at a time.
    """
    holdings = Holdings()
    dirs = [
        (d, day)
        for d in lake.listdir(layout.dataset_prefix(layout.DAILY_BARS))
        if (day := layout.parse_dt_dir(d)) is not None and day >= start
    ]
    to_read: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(dirs) or 1))) as pool:
        for (_, day), infos in zip(dirs, pool.map(lambda d: list(lake.walk(d[0])), dirs), strict=True):
            for info in infos:
                if not info.key.endswith(".parquet"):
                    continue
                obj = layout.BatchObject.parse(info.key)
                if obj is None:
                    if day <= end:
                        holdings.add(_symbol_of(info.key), day)
                    continue
                holdings.objects[info.key] = info
                if obj.start <= end and obj.end >= start:
                    to_read.append(info.key)
        if contents and to_read:

            def keys_of(key: str) -> pa.Table:
                return pq.read_table(io.BytesIO(lake.read(key)), columns=list(KEY_COLUMNS))

            for table in pool.map(keys_of, to_read):
                for symbol, day in zip(table["symbol"].to_pylist(), table["date"].to_pylist(), strict=True):
                    if start <= day <= end:
                        holdings.add(symbol, day)
    return holdings


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
