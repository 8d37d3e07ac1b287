"""The embedded warehouse: bronze in a DuckDB file, loaded straight from the lake's Parquet.

Reading the lake: DuckDB's own parallel Parquet scan over local files, always.
- A local lake is scanned where it lies.
- An S3 lake's batch is first fetched into a spool directory beside the database file (concurrent
  whole-object GETs through Arrow's C++ S3 client, off the GIL), then scanned the same way, and the
  spool is removed when the batch ends. Per-object round trips, not bytes, are what an S3 load of
  small objects costs; fetching them all at once and reading them locally measured faster on the local
  MinIO than Arrow's dataset scan handing Arrow to DuckDB (a HEAD and two ranged GETs per object,
  then a second pass over the rows in DuckDB), and far faster than s3fs GETs or a filesystem
  registered with DuckDB (which calls back into Python for every read). DuckDB cannot download
  httpfs here. A batch is at most `batch_max_bytes`: that is the spool's peak size.
"""

# SQL is built here from identifiers defined in code and values quoted by sqlgen.string_literal.
# ruff: noqa: S608

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs

from stockpipe.lake.store import Lake, ObjectInfo
from stockpipe.settings import LakeSettings
from stockpipe.warehouse import ddl, sqlgen
from stockpipe.warehouse.datasets import BY_NAME, Dataset
from stockpipe.warehouse.listing import LakeObject
from stockpipe.warehouse.loader import Batch, BatchResult, LoadError, new_load_id
from stockpipe.warehouse.settings import S3FetchSettings

log = logging.getLogger(__name__)

BRONZE = "bronze"

# Names this process's spool directories: any other one beside a database this process opened for
# writing was left by a process that died (DuckDB lets one process at a time open a file to write).
_SPOOL_OWNER = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _sql_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(sqlgen.string_literal(v, "duckdb") for v in values) + "]"


class ObjectReader(Protocol):
    """Makes a batch's objects of one dataset readable as relation `name`: the dataset's columns + source_file."""

    def open(
        self, conn: duckdb.DuckDBPyConnection, dataset: Dataset, objects: Sequence[LakeObject], name: str
    ) -> dict[str, int]:
        """Create the relation; returns the rows of each object (by key)."""

    def close(self, conn: duckdb.DuckDBPyConnection, name: str) -> None:
        """Drop it."""


class ParquetScanReader:
    """DuckDB's read_parquet over the objects as local files under `root` (a local lake, or a spool)."""

    def __init__(self, root: str | Path) -> None:
        self.root = str(root).rstrip("/")

    def open(
        self, conn: duckdb.DuckDBPyConnection, dataset: Dataset, objects: Sequence[LakeObject], name: str
    ) -> dict[str, int]:
        files = _sql_list([f"{self.root}/{o.key}" for o in objects])
        root = self.root + "/"
        # Footers only: the rows of each object, and whether every object has every column.
        rows = conn.execute(f"SELECT file_name, num_rows FROM parquet_file_metadata({files})").fetchall()
        names = conn.execute(f"SELECT file_name, list(name) FROM parquet_schema({files}) GROUP BY file_name").fetchall()
        complete = all(set(dataset.columns) <= set(cols) for _, cols in names)
        # Columns are matched by name either way; union_by_name (slower) is needed only when an object
        # predates an optional column, which then reads as null.
        conn.execute(
            f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {', '.join(dataset.columns)}, "
            f"substr(filename, {len(root) + 1}) AS source_file "
            f"FROM read_parquet({files}, filename = true{'' if complete else ', union_by_name = true'})"
        )
        return {str(f)[len(root) :]: int(n) for f, n in rows}

    def close(self, conn: duckdb.DuckDBPyConnection, name: str) -> None:
        conn.execute(f"DROP VIEW IF EXISTS {name}")


def arrow_s3(settings: LakeSettings, fetch: S3FetchSettings | None = None) -> pafs.S3FileSystem:
    """Arrow's S3 filesystem for the lake's endpoint and keys (None: AWS and its credential chain).

    Timeouts bound every request: without them a stalled GET hangs a load that holds the writer lock.
    """
    fetch = fetch or S3FetchSettings()
    kwargs: dict[str, Any] = {
        "region": settings.region,
        "request_timeout": fetch.request_timeout_seconds,
        "connect_timeout": fetch.connect_timeout_seconds,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=fetch.max_attempts),
    }
    if settings.s3_endpoint_url:
        url = urlsplit(settings.s3_endpoint_url)
        kwargs.update(endpoint_override=url.netloc, scheme=url.scheme or "https")
    if settings.access_key is not None and settings.secret_key is not None:
        kwargs.update(
            access_key=settings.access_key.get_secret_value(), secret_key=settings.secret_key.get_secret_value()
        )
    return pafs.S3FileSystem(**kwargs)


class _Cancelled(Exception):
    """Another fetch of the batch failed: this one stopped early."""


def _etag_of(metadata: Mapping[str, Any]) -> str | None:
    for name, value in metadata.items():
        if str(name).lower() == "etag":
            raw = value.decode() if isinstance(value, bytes) else str(value)
            return raw.strip('"')
    return None


class S3SpoolReader:
    """Fetches an S3 batch's objects into a spool directory (concurrent GETs), then scans them as local files.

    An object that is not the listed version changed after the listing: the batch fails (and is
    rolled back) rather than record the listed ETag beside other bytes; the next load lists it again.
    The check: the size, the ETag the read's response names, and for a single-part object (its ETag
    is the MD5 of its bytes) the MD5 of what was read. The first failed fetch stops the batch's others.
    """

    def __init__(self, lake: Lake, spool: Path, fetchers: int = 16, fetch: S3FetchSettings | None = None) -> None:
        self.lake = lake
        self.spool = spool
        self.fetchers = fetchers
        self.fetch = fetch or S3FetchSettings()
        self._fs: pafs.FileSystem | None = None
        self._open: dict[str, ParquetScanReader] = {}  # by relation; each one's root is its spool directory

    @property
    def fs(self) -> pafs.FileSystem:
        if self._fs is None:
            self._fs = arrow_s3(self.lake.settings, self.fetch)
        return self._fs

    def sweep(self) -> None:
        """Remove spool directories left by processes that died mid-batch."""
        if self.spool.is_dir():
            for left in self.spool.iterdir():
                if not left.name.startswith(_SPOOL_OWNER):
                    log.info("removing the spool directory %s of a process that ended mid-batch", left)
                    shutil.rmtree(left, ignore_errors=True)

    def _fetch(self, obj: LakeObject, into: Path, cancel: threading.Event) -> None:
        if cancel.is_set():
            raise _Cancelled(obj.key)
        dest = into / obj.key
        dest.parent.mkdir(parents=True, exist_ok=True)
        listed = obj.info.etag
        # A multipart ETag ("<md5 of the parts' md5s>-<parts>") is no digest of the bytes.
        digest = hashlib.md5(usedforsecurity=False) if self.fetch.verify_md5 and "-" not in listed else None
        with self.fs.open_input_stream(self.lake.path(obj.key)) as source, dest.open("wb") as out:
            answered = _etag_of(source.metadata())
            while chunk := source.read(1 << 20):
                if cancel.is_set():
                    raise _Cancelled(obj.key)
                out.write(chunk)
                if digest is not None:
                    digest.update(chunk)
            size = out.tell()
        changed = "it changed after the listing"
        if size != obj.info.size:
            raise LoadError(f"{obj.key}: read {size} bytes, listed with {obj.info.size}: {changed}")
        if answered is not None and answered != listed:
            raise LoadError(f"{obj.key}: read ETag {answered}, listed with {listed}: {changed}")
        if digest is not None and digest.hexdigest() != listed:
            raise LoadError(f"{obj.key}: read bytes with MD5 {digest.hexdigest()}, listed ETag {listed}: {changed}")

    def _fetch_all(self, objects: Sequence[LakeObject], into: Path) -> None:
        """Every object into the spool; on the first failure the others stop and it is raised."""
        cancel = threading.Event()
        pool = ThreadPoolExecutor(max(1, min(self.fetchers, len(objects))))
        try:
            futures = [pool.submit(self._fetch, o, into, cancel) for o in objects]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in done if f.exception() is not None), None)
            if failed is not None:
                cancel.set()
                for future in futures:
                    future.cancel()
                raise failed.exception()  # type: ignore[misc]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def open(
        self, conn: duckdb.DuckDBPyConnection, dataset: Dataset, objects: Sequence[LakeObject], name: str
    ) -> dict[str, int]:
        self.spool.mkdir(parents=True, exist_ok=True)
        into = Path(tempfile.mkdtemp(prefix=f"{_SPOOL_OWNER}-{name}-", dir=self.spool))
        try:
            self._fetch_all(objects, into)
            scan = ParquetScanReader(into)
            counts = scan.open(conn, dataset, objects, name)
        except BaseException:
            shutil.rmtree(into, ignore_errors=True)
            raise
        self._open[name] = scan
        return counts

    def close(self, conn: duckdb.DuckDBPyConnection, name: str) -> None:
        scan = self._open.pop(name)
        scan.close(conn, name)
        shutil.rmtree(scan.root, ignore_errors=True)


def spool_dir(database: Path | str) -> Path:
    """Where an S3 batch is spooled: beside the database file (its volume holds the warehouse anyway)."""
    if str(database) == ":memory:":
        return Path(tempfile.gettempdir()) / "stockpipe-spool"
    path = Path(database)
    return path.with_name(path.name + ".spool")


_COMMIT_LOCKS: dict[str, threading.Lock] = {}
_COMMIT_LOCKS_GUARD = threading.Lock()


def commit_lock(path: Path | str) -> threading.Lock:
    """The lock that load transactions on one database file take, in this process.

    Another process cannot open the file for writing at all; connections of one process can run
    transactions side by side, and a load's `loaded_at` (its transaction's start) must never be older
    than a load that committed before it: silver reads rows loaded after its newest loaded_at.
    """
    key = str(path) if str(path) == ":memory:" else str(Path(path).resolve())
    with _COMMIT_LOCKS_GUARD:
        return _COMMIT_LOCKS.setdefault(key, threading.Lock())


class DuckDBTarget:
    name = "duckdb"

    def __init__(
        self,
        path: Path | str,
        lake: Lake,
        reader: ObjectReader | None = None,
        threads: int | None = None,
        s3: S3FetchSettings | None = None,
    ) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, str | bool | int | float | list[str]] = {"threads": threads} if threads else {}
        self.conn = duckdb.connect(str(path), config=config)
        self._commit_lock = commit_lock(path) if str(path) != ":memory:" else threading.Lock()
        self.conn.execute("SET TimeZone = 'UTC'")
        self.conn.execute("SET enable_progress_bar = false")
        self.lake = lake
        self.reader: ObjectReader = reader or self._default_reader(path, lake, s3)

    @staticmethod
    def _default_reader(path: Path | str, lake: Lake, s3: S3FetchSettings | None) -> ObjectReader:
        if lake.is_local:
            return ParquetScanReader(lake.root)
        reader = S3SpoolReader(lake, spool_dir(path), fetch=s3)
        if str(path) != ":memory:":
            reader.sweep()  # the connection above holds the file: no other process spools beside it
        return reader

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> DuckDBTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema -----------------------------------------------------------------------------------
    def schema_version(self) -> int | None:
        row = self.conn.execute(f"SELECT max(version) FROM {BRONZE}.{ddl.SCHEMA_VERSION}").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def ensure_schema(self) -> None:
        for statement in ddl.schema_version_ddl(BRONZE, "duckdb"):
            self.conn.execute(statement)
        for migration in ddl.pending(self.schema_version()):
            # DuckDB's DDL is transactional: a migration is applied and recorded whole or not at all.
            self.conn.execute("BEGIN TRANSACTION")
            try:
                for statement in migration.statements(BRONZE, "duckdb"):
                    self.conn.execute(statement)
                self.conn.execute(
                    f"INSERT INTO {BRONZE}.{ddl.SCHEMA_VERSION} VALUES (?, ?, get_current_timestamp())",
                    [migration.version, migration.description],
                )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            log.info("bronze schema migrated to version %d", migration.version)

    # -- ledger -----------------------------------------------------------------------------------
    def noted_dirs(self) -> dict[str, int]:
        rows = self.conn.execute(f"SELECT dir_key, mtime_ns FROM {BRONZE}.{ddl.LAKE_DIRS}").fetchall()
        return {str(k): int(v) for k, v in rows}

    def ledger(self, datasets: Sequence[Dataset], dirs: Sequence[str] | None) -> dict[str, tuple[int, str]]:
        if dirs is not None and not dirs:
            return {}
        sql = f"SELECT object_key, size, etag FROM {BRONZE}.{ddl.LEDGER} WHERE list_contains(?, dataset)"
        params: list[object] = [[d.name for d in datasets]]
        if dirs is not None:
            # Only the listed directories: the lookup follows what was listed, not the ledger's history.
            sql += " AND list_contains(?, object_dir)"
            params.append(list(dirs))
        return {str(k): (int(s), str(e)) for k, s, e in self.conn.execute(sql, params).fetchall()}

    def newest_dirs(self, datasets: Sequence[Dataset]) -> dict[str, str]:
        sql = f"SELECT dataset, max(object_dir) FROM {BRONZE}.{ddl.LEDGER} WHERE list_contains(?, dataset) GROUP BY 1"
        return {str(d): str(m) for d, m in self.conn.execute(sql, [[d.name for d in datasets]]).fetchall()}

    def note_dirs(self, dirs: Mapping[str, int]) -> None:
        now = self._now()
        self.conn.execute(sqlgen.merge_lake_dirs(BRONZE, dict(dirs), now, "duckdb"))

    def _now(self) -> datetime:
        row = self.conn.execute("SELECT get_current_timestamp()").fetchone()
        assert row is not None
        value: datetime = row[0]
        return value

    def record_compaction(self, compacted: ObjectInfo, members: Sequence[ObjectInfo], rows: int) -> bool:
        """Record a compacted lake object as loaded when every object it replaces is loaded already.

        Then no load reads it again (its rows are in bronze through its members); True if recorded.
        """
        directory = compacted.key.rsplit("/", 1)[0]
        dataset = BY_NAME[compacted.key.split("/")[1]]
        known = self.ledger([dataset], [directory])
        if known.get(compacted.key) == (compacted.size, compacted.etag):
            return True
        if not all(known.get(m.key) == (m.size, m.etag) for m in members):
            return False  # some rows never loaded: the next load reads the compacted object
        row = pa.table(
            {
                "object_key": [compacted.key],
                "object_dir": [directory],
                "dataset": [dataset.name],
                "size": pa.array([compacted.size], pa.int64()),
                "etag": [compacted.etag],
                "row_count": pa.array([rows], pa.int64()),
            }
        )
        self.conn.register("_compacted_object", row)
        try:
            with self._commit_lock:
                self.conn.execute(
                    sqlgen.merge_ledger(BRONZE, "SELECT * FROM _compacted_object", new_load_id(), self._now(), "duckdb")
                )
        finally:
            self.conn.unregister("_compacted_object")
        return True

    # -- load -------------------------------------------------------------------------------------
    def load_batch(self, batch: Batch) -> BatchResult:
        groups = batch.by_dataset()
        opened: list[str] = []
        rows: dict[str, int] = {}
        per_object: dict[str, int] = {}
        try:
            for name, objects in groups.items():
                relation = f"_batch_{BY_NAME[name].table}"
                counts = self.reader.open(self.conn, BY_NAME[name], objects, relation)
                opened.append(relation)
                per_object.update(counts)
                rows[name] = sum(counts.values())
            # loaded_at is the transaction's start, taken under the lock that orders commits.
            with self._commit_lock:
                self._merge(batch, groups, per_object)
        except Exception as exc:  # unreadable object, constraint violation, lost connection to S3, ...
            raise LoadError(f"batch {batch.id} rolled back: {exc}") from exc
        finally:
            for relation in opened:
                self.reader.close(self.conn, relation)
        return BatchResult(rows)

    def _merge(self, batch: Batch, groups: Mapping[str, Sequence[LakeObject]], per_object: Mapping[str, int]) -> None:
        """One transaction: the batch's rows into bronze by natural key, its objects into the ledger."""
        objects = pa.table(
            {
                "object_key": [o.key for o in batch.objects],
                "object_dir": [o.dir for o in batch.objects],
                "dataset": [o.name.dataset.name for o in batch.objects],
                "size": pa.array([o.info.size for o in batch.objects], pa.int64()),
                "etag": [o.info.etag for o in batch.objects],
                "row_count": pa.array([per_object.get(o.key, 0) for o in batch.objects], pa.int64()),
            }
        )
        self.conn.register("_batch_objects", objects)
        try:
            self.conn.execute("BEGIN TRANSACTION")
            try:
                loaded_at = self._now()
                for name in groups:
                    dataset = BY_NAME[name]
                    relation = f"_batch_{dataset.table}"
                    source = sqlgen.dedup_source(dataset, relation, "source_file", batch.load_id, loaded_at, "duckdb")
                    # Staged once (deduplicated: one row per key), then delete + insert: MERGE's result.
                    staged = f"_staged_{dataset.table}"
                    self.conn.execute(f"CREATE OR REPLACE TEMP TABLE {staged} AS {source}")
                    for statement in sqlgen.replace_dataset_by_key(BRONZE, dataset, staged):
                        self.conn.execute(statement)
                    self.conn.execute(f"DROP TABLE {staged}")
                self.conn.execute(
                    sqlgen.merge_ledger(BRONZE, "SELECT * FROM _batch_objects", batch.load_id, loaded_at, "duckdb")
                )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        finally:
            self.conn.unregister("_batch_objects")
