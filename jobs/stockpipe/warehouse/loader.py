"""Lake -> bronze: one loader, any target (DuckDB or Snowflake) behind the same small interface.

A load lists the lake, compares each object's (size, etag) with the ledger, and loads what is new or
changed in batches. A batch is one transaction on the target: its rows are merged into bronze on the
natural keys and its objects are recorded in the ledger together, so a load that fails half way
leaves every batch either fully in or not at all, and the next load picks up exactly what is missing.
Loading twice changes nothing: the second run finds every object in the ledger and writes nothing.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from stockpipe.lake.store import Lake
from stockpipe.warehouse.datasets import DATASETS, Dataset
from stockpipe.warehouse.listing import LakeObject, list_lake

log = logging.getLogger(__name__)


class LoadError(RuntimeError):
    """A batch could not be loaded; its transaction was rolled back."""


@dataclass(frozen=True)
class Batch:
    load_id: str
    number: int
    objects: tuple[LakeObject, ...]

    def by_dataset(self) -> dict[str, list[LakeObject]]:
        groups: dict[str, list[LakeObject]] = {}
        for obj in self.objects:
            groups.setdefault(obj.name.dataset.name, []).append(obj)
        return groups

    @property
    def id(self) -> str:
        return f"{self.load_id}-{self.number:05d}"


@dataclass(frozen=True)
class BatchResult:
    rows: Mapping[str, int]  # dataset -> rows read from the batch's objects


class Target(Protocol):
    """What a warehouse does for a load. Implementations: DuckDBTarget, SnowflakeTarget."""

    name: str

    def ensure_schema(self) -> None:
        """Create or migrate the bronze schema (see ddl.py)."""

    def noted_dirs(self) -> dict[str, int]:
        """Lake directories noted as fully loaded, with their mtime_ns (local lakes only)."""

    def ledger(self, datasets: Sequence[Dataset], dirs: Sequence[str] | None) -> dict[str, tuple[int, str]]:
        """(size, etag) of the loaded objects of the datasets, in the given directories (None: all)."""

    def newest_dirs(self, datasets: Sequence[Dataset]) -> dict[str, str]:
        """Per dataset, the newest lake directory (`raw/<dataset>/dt=...`) with a loaded object."""

    def load_batch(self, batch: Batch) -> BatchResult:
        """Merge the batch's rows into bronze and record its objects in the ledger, in one transaction."""

    def note_dirs(self, dirs: Mapping[str, int]) -> None:
        """Record directories whose every object is now loaded."""

    def close(self) -> None: ...


@dataclass
class LoadReport:
    load_id: str
    target: str
    listed: int = 0
    pending: int = 0
    loaded_objects: int = 0
    batches: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    skipped_dirs: int = 0
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "load_id": self.load_id,
            "target": self.target,
            "listed": self.listed,
            "pending": self.pending,
            "loaded_objects": self.loaded_objects,
            "batches": self.batches,
            "rows": dict(self.rows),
            "skipped_dirs": self.skipped_dirs,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Plan:
    objects: list[LakeObject]  # new or changed, to load
    settled_dirs: dict[str, int]  # directories to note once they are loaded
    listed: int
    skipped_dirs: int


def new_load_id(now: datetime | None = None) -> str:
    return f"{(now or datetime.now(UTC)):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def batches(load_id: str, objects: Iterable[LakeObject], max_objects: int, max_bytes: int) -> Iterator[Batch]:
    """Objects in key order, cut into batches of at most max_objects and (unless one object is bigger) max_bytes."""
    current: list[LakeObject] = []
    size = 0
    number = 0
    for obj in sorted(objects, key=lambda o: o.key):
        if current and (len(current) >= max_objects or size + obj.info.size > max_bytes):
            number += 1
            yield Batch(load_id, number, tuple(current))
            current, size = [], 0
        current.append(obj)
        size += obj.info.size
    if current:
        yield Batch(load_id, number + 1, tuple(current))


class BronzeLoader:
    def __init__(
        self,
        lake: Lake,
        target: Target,
        datasets: Sequence[Dataset] = DATASETS,
        batch_max_objects: int = 1000,
        batch_max_bytes: int = 512 * 1024 * 1024,
        listing: Literal["recent", "full"] = "recent",
        lookback_days: int = 2,
    ) -> None:
        self.lake = lake
        self.target = target
        self.datasets = tuple(datasets)
        self.batch_max_objects = batch_max_objects
        self.batch_max_bytes = batch_max_bytes
        self.listing = listing
        self.lookback_days = lookback_days

    def plan(self) -> Plan:
        """What a load would read: the objects whose (size, etag) the ledger does not have."""
        noted = self.target.noted_dirs()
        newest = None
        if not self.lake.is_local and self.listing == "recent":
            newest = self.target.newest_dirs(self.datasets)
        listing = list_lake(self.lake, self.datasets, noted, newest, self.lookback_days)
        known = self.target.ledger(self.datasets, listing.listed_dirs)
        todo = [o for o in listing.objects if known.get(o.key) != (o.info.size, o.info.etag)]
        settled = {k: v for k, v in listing.settled.items() if noted.get(k) != v}
        return Plan(todo, settled, len(listing.objects), listing.skipped_dirs)

    def run(self, load_id: str | None = None) -> LoadReport:
        started = time.perf_counter()
        report = LoadReport(load_id=load_id or new_load_id(), target=self.target.name)
        self.target.ensure_schema()
        plan = self.plan()
        todo = plan.objects
        report.listed, report.skipped_dirs, report.pending = plan.listed, plan.skipped_dirs, len(todo)
        for batch in batches(report.load_id, todo, self.batch_max_objects, self.batch_max_bytes):
            result = self.target.load_batch(batch)
            report.batches += 1
            report.loaded_objects += len(batch.objects)
            for dataset, rows in result.rows.items():
                report.rows[dataset] = report.rows.get(dataset, 0) + rows
            log.info("batch %s: %d objects, %d rows", batch.id, len(batch.objects), sum(result.rows.values()))
        if plan.settled_dirs:
            # Only after every batch committed: a noted directory must hold nothing unloaded.
            self.target.note_dirs(plan.settled_dirs)
        report.seconds = time.perf_counter() - started
        log.info("load %s done", report.load_id, extra={"load": report.as_dict()})
        return report
