"""Exactly-once file cutting for one topic partition.

A file holds consecutive valid records of one partition. Its boundaries depend only on what is in
the log, never on wall-clock time, so every incarnation of the consumer cuts the same files:
- a record whose record-time window (event time // window) is later than the file's window, which is
  the window of the file's first record, closes the file and starts the next one (late records stay);
- a file is closed when it holds `max_records` records;
- a watermark record (a producer's control message, e.g. at the session close) closes the open file
  if its time is past the file's window.
The object name is derived from (topic, partition, first offset, last offset), so a retry or a
zombie writer can only rewrite an identical object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stockpipe.contracts.messages import MessageSchema
from stockpipe.lake.layout import StreamObject, dataset_prefix, parse_dt_dir
from stockpipe.lake.parquet import parquet_bytes
from stockpipe.lake.store import Lake
from stockpipe.stream.windows import window_date, window_start, window_starts

Flush = Callable[[StreamObject, bytes, int], None]  # object, parquet bytes, rows


def find_resume_offset(lake: Lake, dataset: str, topic: str, partition: int) -> int | None:
    """The offset after the newest lake object of a partition, or None if it has none.

    Looks at the newest dt= directories first and stops at the first that holds a file of the
    partition, so the cost does not grow with the lake's history for a partition that is written.
    """
    days = sorted(
        (d for d in (parse_dt_dir(p) for p in lake.listdir(dataset_prefix(dataset))) if d is not None), reverse=True
    )
    for day in days:
        objects = [
            o
            for o in (StreamObject.parse(k) for k in lake.listdir(f"{dataset_prefix(dataset)}/dt={day.isoformat()}"))
            if o is not None and o.topic == topic and o.partition == partition
        ]
        if objects:
            return max(o.last_offset for o in objects) + 1
    return None


@dataclass
class PartitionFiles:
    schema: MessageSchema
    topic: str
    partition: int
    next_offset: int  # records below this are in the lake (or rejected, or control)
    position: int  # records below this have been seen by this incarnation (buffered or done)
    max_records: int
    window_s: int
    flush: Flush
    session_window_s: int | None = None  # shorter windows while the NYSE session is open (stream.windows)
    _tables: list[pa.Table] = field(default_factory=list)
    _rows: int = 0
    _window: int | None = None

    @property
    def buffered(self) -> int:
        return self._rows

    def _windows(self, table: pa.Table) -> np.ndarray:
        micros = pc.cast(table[self.schema.event_ts], pa.int64()).to_numpy(zero_copy_only=False)
        return window_starts(micros, self.window_s, self.session_window_s)

    def add(self, rows: pa.Table, watermarks: list[tuple[int, datetime]]) -> None:
        """Rows (offset order, all >= next_offset) and watermarks (offset, time) of one poll."""
        offsets = rows["kafka_offset"].to_numpy()
        windows = self._windows(rows)
        start = 0
        for mark_offset, mark_ts in sorted(watermarks):
            end = int(np.searchsorted(offsets, mark_offset))
            self._add_rows(rows, windows, start, end)
            start = end
            mark_window = window_start(mark_ts, self.window_s, self.session_window_s)
            if self._rows and self._window is not None and mark_window > self._window:
                self._flush()
        self._add_rows(rows, windows, start, len(offsets))

    def _add_rows(self, rows: pa.Table, windows: np.ndarray, i: int, end: int) -> None:
        while i < end:
            if self._window is None:
                self._window = int(windows[i])
            later = np.flatnonzero(windows[i:end] > self._window)
            cut = i + int(later[0]) if len(later) else end
            take = min(cut, i + self.max_records - self._rows)
            if take > i:
                self._tables.append(rows.slice(i, take - i))
                self._rows += take - i
            if self._rows >= self.max_records or take == cut < end:
                self._flush()
            i = take

    def _flush(self) -> None:
        table = pa.concat_tables(self._tables) if len(self._tables) > 1 else self._tables[0]
        offsets = table["kafka_offset"]
        assert self._window is not None
        obj = StreamObject(
            dataset=self.schema.dataset,
            dt=window_date(self._window),
            topic=self.topic,
            partition=self.partition,
            first_offset=int(pc.min(offsets).as_py()),
            last_offset=int(pc.max(offsets).as_py()),
        )
        self.flush(obj, parquet_bytes(table), table.num_rows)
        self._tables, self._rows, self._window = [], 0, None
        self.next_offset = obj.last_offset + 1

    def drop(self) -> None:
        """Forget buffered rows (partition revoked or lost): the next owner re-reads them."""
        self._tables, self._rows, self._window = [], 0, None
