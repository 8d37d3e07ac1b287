"""Object names in the lake (the same under file:// and s3://).

Stream data:  raw/<dataset>/dt=YYYY-MM-DD/<topic>+<partition>+<first_offset:020d>+<last_offset:020d>.parquet
Batch data:   raw/daily_bars/dt=<end>/<kind>+<start>+<end>+<chunk:05d>.parquet
              (one object per chunk of a job's symbols: the job's kind and interval, then the chunk;
              dt is the interval's last day, so a daily run writes into its own session's directory)
Older lakes:  raw/daily_bars/dt=YYYY-MM-DD/<symbol>.parquet (one object per symbol and day; still read)
The same input always gives the same name, so a retry overwrites and never duplicates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from stockpipe.contracts.messages import DLQ_V1, QUOTE_V1, TRADE_V1

RAW = "raw"
DAILY_BARS = "daily_bars"
# The datasets written by the stream consumer (StreamObject names); every other dataset is a batch job's.
STREAM_DATASETS: tuple[str, ...] = (QUOTE_V1.dataset, TRADE_V1.dataset, DLQ_V1.dataset)
_STREAM_FILE = re.compile(r"^(?P<topic>[^+/]+)\+(?P<partition>\d+)\+(?P<first>\d{20})\+(?P<last>\d{20})\.parquet$")
_BATCH_FILE = re.compile(
    r"^(?P<kind>[a-z][a-z0-9_]*)\+(?P<start>\d{4}-\d{2}-\d{2})\+(?P<end>\d{4}-\d{2}-\d{2})\+(?P<chunk>\d{5})\.parquet$"
)
_DT_DIR = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True, order=True)
class StreamObject:
    """One stream file: records first..last (inclusive) of one topic partition."""

    dataset: str
    dt: date
    topic: str
    partition: int
    first_offset: int
    last_offset: int

    @property
    def key(self) -> str:
        return (
            f"{RAW}/{self.dataset}/dt={self.dt.isoformat()}/"
            f"{self.topic}+{self.partition}+{self.first_offset:020d}+{self.last_offset:020d}.parquet"
        )

    @classmethod
    def parse(cls, key: str) -> StreamObject | None:
        parts = key.strip("/").split("/")
        if len(parts) < 4 or parts[-4] != RAW:
            return None
        dt_match, file_match = _DT_DIR.match(parts[-2]), _STREAM_FILE.match(parts[-1])
        if not dt_match or not file_match:
            return None
        return cls(
            dataset=parts[-3],
            dt=date.fromisoformat(dt_match.group(1)),
            topic=file_match["topic"],
            partition=int(file_match["partition"]),
            first_offset=int(file_match["first"]),
            last_offset=int(file_match["last"]),
        )


def dataset_prefix(dataset: str) -> str:
    return f"{RAW}/{dataset}"


def dt_prefix(dataset: str, dt: date) -> str:
    return f"{RAW}/{dataset}/dt={dt.isoformat()}"


def parse_dt_dir(name: str) -> date | None:
    match = _DT_DIR.match(name.rstrip("/").rsplit("/", 1)[-1])
    return date.fromisoformat(match.group(1)) if match else None


def daily_bar_key(day: date, symbol: str) -> str:
    """The older layout's name of one symbol's bar of one day (read, no longer written)."""
    return f"{RAW}/{DAILY_BARS}/dt={day.isoformat()}/{symbol}.parquet"


@dataclass(frozen=True, order=True)
class BatchObject:
    """One object of a batch job: the rows of one chunk of its symbols over the job's interval."""

    dataset: str
    kind: str  # daily, backfill, gaps
    start: date
    end: date
    chunk: int

    @property
    def key(self) -> str:
        return (
            f"{RAW}/{self.dataset}/dt={self.end.isoformat()}/"
            f"{self.kind}+{self.start.isoformat()}+{self.end.isoformat()}+{self.chunk:05d}.parquet"
        )

    @classmethod
    def parse(cls, key: str) -> BatchObject | None:
        parts = key.strip("/").split("/")
        if len(parts) < 4 or parts[-4] != RAW:
            return None
        dt_match, file_match = _DT_DIR.match(parts[-2]), _BATCH_FILE.match(parts[-1])
        if not dt_match or not file_match or dt_match.group(1) != file_match["end"]:
            return None
        start, end = date.fromisoformat(file_match["start"]), date.fromisoformat(file_match["end"])
        if start > end:
            return None
        return cls(parts[-3], file_match["kind"], start, end, int(file_match["chunk"]))
