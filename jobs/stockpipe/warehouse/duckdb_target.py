"""The embedded warehouse: bronze in a DuckDB file, loaded straight from the lake's Parquet.

Reading the lake:
- a local lake is scanned by DuckDB itself (read_parquet over the batch's files, in parallel);
- an S3 lake is fetched with the lake's own s3fs (concurrent GETs), decoded with pyarrow and handed
  to DuckDB as Arrow. DuckDB cannot download httpfs here, and reading s3:// through a filesystem
  registered with `duckdb.register_filesystem` was about 5x slower on the local MinIO (200 objects
  of 500 rows: 2.7-3.0 s against 0.55-0.62 s), because DuckDB calls back into Python for every read.
  `FsspecScanReader` keeps that path for comparison (see bench.py).
"""

# SQL is built here from identifiers defined in code and values quoted by sqlgen.string_literal.
# ruff: noqa: S608

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from stockpipe.lake.store import Lake
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


class ArrowReader:
    """Fetches the objects through the lake's filesystem (concurrently on S3) and decodes them with pyarrow."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    def read(self, dataset: Dataset, objects: Sequence[LakeObject]) -> pa.Table:
        paths = [self.lake.path(o.key) for o in objects]
        blobs: Mapping[str, bytes] = self.lake.fs.cat(paths) if paths else {}
        tables = []
        for obj, path in zip(objects, paths, strict=True):
            table = conform(pq.read_table(io.BytesIO(blobs[path])), dataset.schema, obj.key)
            tables.append(table.append_column("source_file", pa.array([obj.key] * table.num_rows, pa.string())))
        return pa.concat_tables(tables)

    def open(
        self, conn: duckdb.DuckDBPyConnection, dataset: Dataset, objects: Sequence[LakeObject], name: str
    ) -> dict[str, int]:
        table = self.read(dataset, objects)
        conn.register(name, table)
        counts = table.group_by("source_file").aggregate([("source_file", "count")]).to_pylist()
        return {str(r["source_file"]): int(r["source_file_count"]) for r in counts}

    def close(self, conn: duckdb.DuckDBPyConnection, name: str) -> None:
        conn.unregister(name)


class DuckDBTarget:
    name = "duckdb"

    def __init__(
        self, path: Path | str, lake: Lake, reader: ObjectReader | None = None, threads: int | None = None
    ) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, str | bool | int | float | list[str]] = {"threads": threads} if threads else {}
        self.conn = duckdb.connect(str(path), config=config)
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
                opened.append("_batch_objects")
                self.conn.execute(
                    sqlgen.merge_ledger(BRONZE, "SELECT * FROM _batch_objects", batch.load_id, loaded_at, "duckdb")
                )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        except Exception as exc:  # unreadable object, constraint violation, lost connection to S3, ...
            raise LoadError(f"batch {batch.id} rolled back: {exc}") from exc
        finally:
            for relation in opened:
                if relation == "_batch_objects":
                    self.conn.unregister(relation)
                else:
                    self.reader.close(self.conn, relation)
        return BatchResult(rows)
