"""`stockpipe lake compact --date D`: a session's small stream files rewritten into few large ones.

Short record-time windows during the session (stream.windows) keep the intraday path fresh but leave
hundreds of objects per partition and day; lists, loads and request budgets pay per object. After the
close, per dataset and topic partition of `dt=D`, consecutive objects are concatenated (in offset
order, up to `target_rows` rows each) into `<topic>+<partition>+<first>+<last>.parquet` spanning
exactly their offsets, written atomically BEFORE the small ones are deleted. So:
- the consumer's resume rule still holds: the newest object of a partition still ends at its last
  offset, at every instant of the compaction (compacted and small objects end at the same offset);
- re-running changes nothing: a compacted object is never regrouped with its neighbours (greedy
  groups are already as large as `target_rows` allows), and the name of a group is fixed by its offsets;
- an interrupted run is finished by the next one: objects whose offsets another object covers are
  what is left of it (or of a zombie writer) and are deleted, never read twice;
- the load ledger: when every object a compacted object replaces is in the ledger already, the
  warehouse records the compacted object there too (`register`, e.g. DuckDBTarget.record_compaction
  behind the writer lock), so no load reads it: load cost stays with new data. Otherwise (or on
  Snowflake) the next load reads it, and bronze, which merges on natural keys, gains no row from it.
- the warehouse is held only for each group's ledger swap: listing, reading, rewriting and uploading
  happen before it, the deletes after it, so a day's rewrite never stalls the continuous loader.
A partition whose objects overlap without one covering the other is left alone (logged): it is not
this job's to decide which copy is right.
"""

from __future__ import annotations

import io
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq

from stockpipe.lake.layout import STREAM_DATASETS, StreamObject, dt_prefix
from stockpipe.lake.parquet import parquet_bytes
from stockpipe.lake.store import Lake, ObjectInfo

log = logging.getLogger(__name__)

# (compacted object, the objects it replaces, its rows) -> recorded in the ledger? The warehouse's
# side of a compaction (it takes its own writer lock); the lake knows nothing of its tables.
Register = Callable[[ObjectInfo, Sequence[ObjectInfo], int], bool]


@dataclass
class CompactionReport:
    day: str
    partitions: int = 0
    objects_before: int = 0
    objects_after: int = 0
    written: int = 0
    deleted: int = 0
    rows_rewritten: int = 0
    recorded_in_ledger: int = 0
    skipped_partitions: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {**self.__dict__, "seconds": round(self.seconds, 3)}


def _rows(lake: Lake, key: str) -> int:
    with lake.fs.open(lake.path(key), "rb") as handle:
        return int(pq.ParquetFile(handle).metadata.num_rows)


def _groups(objects: list[StreamObject], rows: dict[str, int], target_rows: int) -> list[list[StreamObject]]:
    """Consecutive objects, greedily, at most target_rows rows a group (a bigger object stands alone)."""
    groups: list[list[StreamObject]] = []
    current: list[StreamObject] = []
    total = 0
    for obj in objects:
        if current and total + rows[obj.key] > target_rows:
            groups.append(current)
            current, total = [], 0
        current.append(obj)
        total += rows[obj.key]
    if current:
        groups.append(current)
    return groups


def _info(lake: Lake, key: str) -> ObjectInfo:
    info = lake.info(key)
    if info is None:
        raise FileNotFoundError(key)
    return info


def compact_day(
    lake: Lake,
    day: date,
    target_rows: int = 1_000_000,
    register: Register | None = None,
    datasets: Sequence[str] = STREAM_DATASETS,
) -> CompactionReport:
    started = time.perf_counter()
    report = CompactionReport(day.isoformat())
    for dataset in datasets:
        by_partition: dict[tuple[str, int], list[StreamObject]] = {}
        infos: dict[str, ObjectInfo] = {}  # one listing gives every object's size and etag: no HEAD each
        for info in lake.walk(dt_prefix(dataset, day)):
            obj = StreamObject.parse(info.key)
            if obj is not None and obj.dataset == dataset:
                by_partition.setdefault((obj.topic, obj.partition), []).append(obj)
                infos[info.key] = info
        for (topic, partition), objects in sorted(by_partition.items()):
            report.partitions += 1
            report.objects_before += len(objects)
            objects.sort(key=lambda o: (o.first_offset, -o.last_offset))
            # Objects inside another's offsets: what an interrupted run (or a zombie) left behind.
            kept: list[StreamObject] = []
            covered: dict[StreamObject, list[StreamObject]] = {}
            for obj in objects:
                if kept and kept[-1].first_offset <= obj.first_offset and obj.last_offset <= kept[-1].last_offset:
                    covered.setdefault(kept[-1], []).append(obj)
                else:
                    kept.append(obj)
            if any(a.last_offset >= b.first_offset for a, b in itertools.pairwise(kept)):
                log.warning("%s %s[%d]: overlapping objects; left as they are", day, topic, partition)
                report.skipped_partitions.append(f"{dataset}/{topic}+{partition}")
                report.objects_after += len(objects)
                continue
            for cover, inside in covered.items():
                if register is not None:
                    register(infos[cover.key], [infos[o.key] for o in inside], _rows(lake, cover.key))
                for obj in inside:
                    lake.delete(obj.key)
                    report.deleted += 1
            rows = {o.key: _rows(lake, o.key) for o in kept}
            for group in _groups(kept, rows, target_rows):
                report.objects_after += 1
                if len(group) == 1:
                    continue
                members = [infos[o.key] for o in group]
                table = pa.concat_tables(pq.read_table(io.BytesIO(lake.read(o.key))) for o in group)
                compacted = StreamObject(dataset, day, topic, partition, group[0].first_offset, group[-1].last_offset)
                if table.num_rows != sum(rows[o.key] for o in group):
                    raise RuntimeError(f"{compacted.key}: rows do not add up; nothing deleted")
                lake.write_atomic(compacted.key, parquet_bytes(table))  # before any small one goes
                report.written += 1
                report.rows_rewritten += table.num_rows
                if register is not None and register(_info(lake, compacted.key), members, table.num_rows):
                    report.recorded_in_ledger += 1
                for obj in group:
                    lake.delete(obj.key)
                    report.deleted += 1
    report.seconds = time.perf_counter() - started
    log.info("compacted %s", day, extra={"compaction": report.as_dict()})
    return report
