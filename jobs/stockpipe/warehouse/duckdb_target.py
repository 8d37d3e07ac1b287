"""The embedded warehouse: bronze in a DuckDB file, loaded straight from the lake's Parquet.

Reading the lake:
- a local lake is scanned by DuckDB itself (read_parquet over the batch's files, in parallel);
- an S3 lake is read by Arrow's own S3 filesystem and dataset scanner (C++ threads, many objects in
  flight, no GIL) and handed to DuckDB as Arrow: about the local rate on the local MinIO, where
  s3fs GETs decoded object by object in Python were 16x slower. DuckDB cannot download httpfs
  here, and reading s3:// through a filesystem registered with `duckdb.register_filesystem` was
  slower still (DuckDB calls back into Python for every read); `FsspecScanReader` and
  `S3fsArrowReader` keep those paths for comparison (see bench/warehouse.py).
"""

# SQL is built here from identifiers defined in code and values quoted by sqlgen.string_literal.
# ruff: noqa: S608

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from stockpipe.lake.store import Lake
from stockpipe.settings import LakeSettings
from stockpipe.warehouse import ddl, sqlgen
from stockpipe.warehouse.datasets import BY_NAME, Dataset
from stockpipe.warehouse.listing import LakeObject
from stockpipe.warehouse.loader import Batch, BatchResult, LoadError

log = logging.getLogger(__name__)

BRONZE = "bronze"


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
    """DuckDB's read_parquet over the objects' paths: local files, or s3:// through a registered filesystem."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    def _paths(self, objects: Sequence[LakeObject]) -> list[str]:
        return [self.lake.path(o.key) for o in objects]

    def _root(self) -> str:
        return self.lake.root + "/"

    def open(
        self, conn: duckdb.DuckDBPyConnection, dataset: Dataset, objects: Sequence[LakeObject], name: str
    ) -> dict[str, int]:
        files = _sql_list(self._paths(objects))
        root = self._root()
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


class FsspecScanReader(ParquetScanReader):
    """read_parquet on s3:// URLs served by the lake's s3fs, registered with DuckDB (slower: see module doc)."""

    def __init__(self, lake: Lake, conn: duckdb.DuckDBPyConnection) -> None:
        super().__init__(lake)
        conn.register_filesystem(lake.fs)

    def _paths(self, objects: Sequence[LakeObject]) -> list[str]:
        return [self.lake.uri(o.key) for o in objects]

    def _root(self) -> str:
        return self.lake.uri("")


def conform(table: pa.Table, schema: pa.Schema, key: str) -> pa.Table:
    """The object's columns in contract order and types; absent optional columns become nulls."""
    arrays: list[Any] = []
    for f in schema:
        if f.name in table.column_names:
            arrays.append(table[f.name].cast(f.type))
        elif f.nullable:
            arrays.append(pa.nulls(table.num_rows, f.type))
        else:
            raise LoadError(f"{key}: required column {f.name!r} is missing")
    # Nullability is bronze's to check (NOT NULL, inside the transaction), not the reader's.
    relaxed = pa.schema([pa.field(f.name, f.type) for f in schema])
    return pa.Table.from_arrays(arrays, schema=relaxed)


def arrow_s3(settings: LakeSettings) -> pafs.S3FileSystem:
    """Arrow's S3 filesystem for the lake's endpoint and keys (None: AWS and its credential chain)."""
    kwargs: dict[str, Any] = {"region": settings.region}
    if settings.s3_endpoint_url:
        url = urlsplit(settings.s3_endpoint_url)
        kwargs.update(endpoint_override=url.netloc, scheme=url.scheme or "https")
    if settings.access_key is not None and settings.secret_key is not None:
        kwargs.update(
            access_key=settings.access_key.get_secret_value(), secret_key=settings.secret_key.get_secret_value()
        )
    return pafs.S3FileSystem(**kwargs)


def _with_source(tables: Sequence[pa.Table], keys: Sequence[str]) -> pa.Table:
    """The objects' tables as one, with each row's object key as `source_file`."""
    table = pa.concat_tables(tables)
    counts = np.array([t.num_rows for t in tables], dtype=np.int64)
    source = pa.array(keys, pa.string()).take(pa.array(np.repeat(np.arange(len(keys)), counts)))
    return table.append_column("source_file", source)


class ArrowReader:
    """Reads the objects through Arrow's S3 filesystem: a dataset scan, many objects at once, off the GIL."""

    def __init__(self, lake: Lake, readahead: int = 64) -> None:
        self.lake = lake
        self.readahead = readahead
        self._fs: pafs.FileSystem | None = None

    @property
    def fs(self) -> pafs.FileSystem:
        if self._fs is None:
            self._fs = pafs.LocalFileSystem() if self.lake.is_local else arrow_s3(self.lake.settings)
        return self._fs

    def read(self, dataset: Dataset, objects: Sequence[LakeObject]) -> pa.Table:
        keys = {self.lake.path(o.key): o.key for o in objects}
        scan = ds.dataset(list(keys), format="parquet", filesystem=self.fs).scanner(
            use_threads=True, fragment_readahead=self.readahead, batch_size=1 << 20
        )
        pieces: dict[str, list[pa.RecordBatch]] = {path: [] for path in keys}
        for tagged in scan.scan_batches():
            pieces[tagged.fragment.path].append(tagged.record_batch)
        tables = []
        for path, key in keys.items():
            if pieces[path]:
                table = pa.Table.from_batches(pieces[path])
            else:
                table = pq.read_schema(path, filesystem=self.fs).empty_table()
            tables.append(conform(table, dataset.schema, key))
        return _with_source(tables, list(keys.values()))

    def open(
        self, conn: duckdb.DuckDBPyConnection, dataset: Dataset, objects: Sequence[LakeObject], name: str
    ) -> dict[str, int]:
        table = self.read(dataset, objects)
        conn.register(name, table)
        counts = table.group_by("source_file").aggregate([("source_file", "count")]).to_pylist()
        found = {str(r["source_file"]): int(r["source_file_count"]) for r in counts}
        return {o.key: found.get(o.key, 0) for o in objects}

    def close(self, conn: duckdb.DuckDBPyConnection, name: str) -> None:
        conn.unregister(name)


class S3fsArrowReader(ArrowReader):
    """The lake's s3fs fetches the objects (concurrent GETs), pyarrow decodes them one by one (for comparison)."""

    def read(self, dataset: Dataset, objects: Sequence[LakeObject]) -> pa.Table:
        paths = [self.lake.path(o.key) for o in objects]
        blobs: Mapping[str, bytes] = self.lake.fs.cat(paths) if paths else {}
        tables = [
            conform(pq.read_table(io.BytesIO(blobs[path])), dataset.schema, obj.key)
            for obj, path in zip(objects, paths, strict=True)
        ]
        return _with_source(tables, [o.key for o in objects])


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
        self, path: Path | str, lake: Lake, reader: ObjectReader | None = None, threads: int | None = None
    ) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, str | bool | int | float | list[str]] = {"threads": threads} if threads else {}
        self.conn = duckdb.connect(str(path), config=config)
        self._commit_lock = commit_lock(path) if str(path) != ":memory:" else threading.Lock()
        self.conn.execute("SET TimeZone = 'UTC'")
        self.conn.execute("SET enable_progress_bar = false")
        self.lake = lake
        self.reader: ObjectReader = reader or (ParquetScanReader(lake) if lake.is_local else ArrowReader(lake))

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
