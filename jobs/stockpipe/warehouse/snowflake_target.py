"""The production warehouse: bronze in Snowflake, loaded with COPY INTO from a stage and MERGE.

Everything goes through the workload's Snowpark session (stockpipe.warehouse.snowpark_session):
`session.file.put` uploads, `DataFrameReader.copy_into_table` copies, `session.sql` runs the rest (the
MERGE statements come from sqlgen, shared with the DuckDB target, so both targets merge alike).

A batch, per dataset (and topic):
1. the objects are on a stage: the external stage on the lake bucket (production; nothing moves), or
   PUT one by one to the internal stage under a batch-unique path (tests, small deployments);
2. in one transaction: COPY INTO a transient staging table (FILE_FORMAT=(TYPE=PARQUET)
   MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE, FORCE=TRUE because the ledger, not Snowflake's 64-day
   load history, decides what is loaded: a rolled-back batch must load again), check that every
   row belongs to the object it came from, MERGE into bronze on the natural key, MERGE the objects
   into the ledger; COMMIT.
Rows are attributed to objects through the object names (stream files: partition and offset range;
daily bars: symbol and date) rather than METADATA$FILENAME, which COPY ... MATCH_BY_COLUMN_NAME only
offers through INCLUDE_METADATA (not available in fakesnow, the test stand-in). The staging tables
are shared by loads: a second concurrent load waits on their locks until the first commits.
"""

# SQL is built here from identifiers defined in code and values quoted by sqlgen.string_literal.
# ruff: noqa: S608

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stockpipe.lake.store import Lake
from stockpipe.warehouse import ddl, sqlgen
from stockpipe.warehouse.datasets import DATASETS, Dataset
from stockpipe.warehouse.listing import LakeObject
from stockpipe.warehouse.loader import Batch, BatchResult, LoadError
from stockpipe.warehouse.settings import SnowflakeSettings
from stockpipe.warehouse.snowpark_session import create_session

if TYPE_CHECKING:
    from snowflake.snowpark import Row, Session

log = logging.getLogger(__name__)

COPY_FILES_LIMIT = 1000  # Snowflake's limit on FILES = (...)
STG_OBJECTS = "STG_OBJECTS"
MANIFEST_ROWS = 500  # objects per INSERT of the batch manifest


def _literal(value: object) -> str:
    """A manifest value as a Snowflake literal (strings quoted by sqlgen, numbers as they are)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool | int):
        return str(int(value))
    return sqlgen.string_literal(str(value), "snowflake")


def open_session(settings: SnowflakeSettings, **overrides: Any) -> Session:
    """A Snowpark session for a bronze load (one login; the caller closes it)."""
    return create_session(settings, "stockpipe-load-bronze", **overrides)


def staging_table(dataset: Dataset) -> str:
    return f"STG_{dataset.table.upper()}"


@dataclass(frozen=True)
class _Group:
    index: int
    dataset: Dataset
    topic: str | None
    objects: tuple[LakeObject, ...]


def _attribution(group: _Group) -> str:
    """How a staged row finds its object: by what the object's name says about its rows.

    A batch job's object (many symbols and days) is a group of its own, so its staged rows are all its.
    """
    if group.dataset.stream:
        return "s.kafka_partition = o.kafka_partition AND s.kafka_offset BETWEEN o.first_offset AND o.last_offset"
    if group.objects[0].name.job is not None:
        return "TRUE"
    return "s.symbol = o.symbol AND s.date = o.dt"


class SnowflakeTarget:
    name = "snowflake"

    def __init__(self, session: Session, lake: Lake, settings: SnowflakeSettings, owned: bool = True) -> None:
        """owned: close() closes the session (a workload's kept session is closed by its keeper)."""
        self.session = session
        self.owned = owned
        self.lake = lake
        self.settings = settings
        self.schema = f"{settings.database}.{settings.bronze_schema}"
        self.stage = f"{self.schema}.{settings.stage_name}"
        self.internal = settings.stage_mode == "internal"

    def close(self) -> None:
        if self.owned:
            self.session.close()

    def __enter__(self) -> SnowflakeTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _execute(self, sql: str) -> list[Row]:
        rows: list[Row] = self.session.sql(sql).collect()
        return rows

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._execute(sql)]

    # -- schema -----------------------------------------------------------------------------------
    def schema_version(self) -> int | None:
        rows = self._rows(f"SELECT max(version) FROM {self.schema}.{ddl.SCHEMA_VERSION}")
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    def ensure_schema(self) -> None:
        # Snowflake commits each DDL statement by itself: every statement here is idempotent.
        for statement in ddl.schema_version_ddl(self.schema, "snowflake"):
            self._execute(statement)
        self._execute(f"USE SCHEMA {self.schema}")
        for migration in ddl.pending(self.schema_version()):
            for statement in migration.statements(self.schema, "snowflake"):
                self._execute(statement)
            self._execute(
                f"INSERT INTO {self.schema}.{ddl.SCHEMA_VERSION} (version, description, applied_at) "
                f"SELECT {migration.version}, {sqlgen.string_literal(migration.description, 'snowflake')}, "
                "CURRENT_TIMESTAMP()"
            )
            log.info("bronze schema migrated to version %d", migration.version)
        for dataset in DATASETS:
            self._execute(
                f"CREATE TRANSIENT TABLE IF NOT EXISTS {self.schema}.{staging_table(dataset)} "
                f"({', '.join(ddl.staging_columns(dataset, 'snowflake'))})"
            )
        self._execute(
            f"CREATE TRANSIENT TABLE IF NOT EXISTS {self.schema}.{STG_OBJECTS} (grp NUMBER(10,0), "
            "object_key VARCHAR, object_dir VARCHAR, dataset VARCHAR, size NUMBER(19,0), etag VARCHAR, "
            "row_count NUMBER(19,0), kafka_partition NUMBER(10,0), first_offset NUMBER(19,0), "
            "last_offset NUMBER(19,0), symbol VARCHAR, dt DATE)"
        )
        self._ensure_stage()

    def _ensure_stage(self) -> None:
        if self.internal:
            self._execute(f"CREATE STAGE IF NOT EXISTS {self.stage}")
        elif self.settings.stage_url:
            self._execute(
                f"CREATE STAGE IF NOT EXISTS {self.stage} "
                f"URL = {sqlgen.string_literal(self.settings.stage_url.rstrip('/') + '/', 'snowflake')} "
                f"STORAGE_INTEGRATION = {self.settings.storage_integration}"
            )
        # else: the external stage is provisioned outside (e.g. by Terraform) and only used here.

    # -- ledger -----------------------------------------------------------------------------------
    def noted_dirs(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._rows(f"SELECT dir_key, mtime_ns FROM {self.schema}.{ddl.LAKE_DIRS}")}

    def ledger(self, datasets: Sequence[Dataset], dirs: Sequence[str] | None) -> dict[str, tuple[int, str]]:
        names = ", ".join(sqlgen.string_literal(d.name, "snowflake") for d in datasets)
        base = f"SELECT object_key, size, etag FROM {self.schema}.{ddl.LEDGER} WHERE dataset IN ({names})"
        queries = [base] if dirs is None else [
            f"{base} AND object_dir IN ({', '.join(sqlgen.string_literal(d, 'snowflake') for d in dirs[i:i + 500])})"
            for i in range(0, len(dirs), 500)
        ]  # fmt: skip
        known: dict[str, tuple[int, str]] = {}
        for sql in queries:
            known.update({str(k): (int(s), str(e)) for k, s, e in self._rows(sql)})
        return known

    def newest_dirs(self, datasets: Sequence[Dataset]) -> dict[str, str]:
        names = ", ".join(sqlgen.string_literal(d.name, "snowflake") for d in datasets)
        sql = f"SELECT dataset, max(object_dir) FROM {self.schema}.{ddl.LEDGER} WHERE dataset IN ({names}) GROUP BY 1"
        return {str(d): str(m) for d, m in self._rows(sql)}

    def note_dirs(self, dirs: Mapping[str, int]) -> None:
        self._execute(sqlgen.merge_lake_dirs(self.schema, dict(dirs), self._now(), "snowflake"))

    def _now(self) -> datetime:
        value: datetime = self._rows("SELECT CURRENT_TIMESTAMP()")[0][0]
        return value

    # -- load -------------------------------------------------------------------------------------
    def _groups(self, batch: Batch) -> list[_Group]:
        """One COPY each: objects of a dataset and topic (a batch job's object alone), at most COPY_FILES_LIMIT."""
        keyed: dict[tuple[str, str], list[LakeObject]] = {}
        for obj in batch.objects:
            alone = obj.key if obj.name.job is not None else obj.name.topic or ""
            keyed.setdefault((obj.name.dataset.name, alone), []).append(obj)
        groups: list[_Group] = []
        for (_, _), objs in sorted(keyed.items()):
            for first in range(0, len(objs), COPY_FILES_LIMIT):
                part = tuple(objs[first : first + COPY_FILES_LIMIT])
                groups.append(_Group(len(groups), part[0].name.dataset, part[0].name.topic, part))
        return groups

    def _put(self, batch: Batch, groups: Sequence[_Group]) -> None:
        """Upload the batch's objects to the internal stage, under <batch id>/g<group>/<object dir>/."""
        with tempfile.TemporaryDirectory(prefix="stockpipe-put-") as tmp:
            for group in groups:
                for obj in group.objects:
                    if self.lake.is_local:
                        local = self.lake.path(obj.key)
                    else:
                        local = str(Path(tmp) / obj.key)
                        Path(local).parent.mkdir(parents=True, exist_ok=True)
                        Path(local).write_bytes(self.lake.read(obj.key))
                    target = f"@{self.stage}/{batch.id}/g{group.index}/{obj.dir}/"
                    for put in self.session.file.put(local, target, auto_compress=False, overwrite=True):
                        if put.status.upper() not in {"UPLOADED", "SKIPPED"}:
                            raise LoadError(f"PUT of {obj.key} ended {put.status}: {put.message}")

    def _copy_source(self, batch: Batch, group: _Group) -> tuple[str, list[str] | None]:
        """Where a group's COPY reads: its own path on the internal stage, or FILES on the external one."""
        prefix = group.dataset.prefix
        if self.internal:
            # The batch's own stage path holds exactly the group's objects; PURGE removes the upload.
            return f"@{self.stage}/{batch.id}/g{group.index}/{prefix}/", None
        return f"@{self.stage}/{prefix}/", [o.key.removeprefix(prefix + "/") for o in group.objects]

    def _copy_sql(self, batch: Batch, group: _Group) -> str:
        """The COPY statement a group runs (copy_into_table writes the same), for plans and tests."""
        location, files = self._copy_source(batch, group)
        options = "FILE_FORMAT = (TYPE = PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE FORCE = TRUE"
        into = f"COPY INTO {self.schema}.{staging_table(group.dataset)}"
        if files is None:
            return f"{into} FROM {location} {options} PURGE = TRUE"
        listed = ", ".join(sqlgen.string_literal(f, "snowflake") for f in files)
        return f"{into} FROM {location} FILES = ({listed}) {options}"

    def copy_statements(self, batch: Batch) -> list[str]:
        """The COPY INTO statements of a batch (external stage: FILES lists of the lake keys)."""
        return [self._copy_sql(batch, g) for g in self._groups(batch)]

    def _copy(self, batch: Batch, group: _Group) -> list[Row]:
        """COPY the group's objects into its staging table; COPY's result rows (file, status, rows_loaded)."""
        location, files = self._copy_source(batch, group)
        # No schema inference: the Parquet columns land by name in the staging table's columns.
        frame = self.session.read.option("infer_schema", False).parquet(location)
        options: dict[str, Any] = {"match_by_column_name": "CASE_INSENSITIVE", "force": True}
        if files is None:
            options["purge"] = True
        result: list[Row] = frame.copy_into_table(
            f"{self.schema}.{staging_table(group.dataset)}", files=files, **options
        )
        return result

    def _copied_rows(self, result: Sequence[Row], group: _Group) -> dict[str, int]:
        """Rows loaded per object from COPY's result (file names end with the object's key)."""
        wanted = {o.key for o in group.objects}
        by_key: dict[str, int] = {}
        for row in result:
            fields = {k.lower(): v for k, v in row.as_dict().items()}
            if str(fields["status"]).upper() != "LOADED":
                raise LoadError(f"COPY of {fields['file']} ended {fields['status']}")
            # A stage path ends with the object's key: raw/<dataset>/dt=<day>/<file>.
            key = "/".join(str(fields["file"]).split("/")[-4:])
            if key not in wanted:
                raise LoadError(f"COPY loaded {fields['file']}, which is no object of the batch")
            by_key[key] = int(fields["rows_loaded"])
        missing = sorted(wanted - by_key.keys())
        if missing:
            raise LoadError(f"COPY did not load {missing[:3]}{'...' if len(missing) > 3 else ''}")
        return by_key

    def _stage_manifest(self, group: _Group, rows: Mapping[str, int]) -> None:
        values = [
            (
                group.index, o.key, o.dir, group.dataset.name, o.info.size, o.info.etag, rows.get(o.key, 0),
                o.name.partition, o.name.first_offset, o.name.last_offset, o.name.symbol, o.name.dt.isoformat(),
            )
            for o in group.objects
        ]  # fmt: skip
        for first in range(0, len(values), MANIFEST_ROWS):
            chunk = ", ".join(
                f"({', '.join(_literal(v) for v in row)})" for row in values[first : first + MANIFEST_ROWS]
            )
            self._execute(
                f"INSERT INTO {self.schema}.{STG_OBJECTS} (grp, object_key, object_dir, dataset, size, etag, "
                f"row_count, kafka_partition, first_offset, last_offset, symbol, dt) VALUES {chunk}"
            )

    def _check_attribution(self, group: _Group, copied: int) -> None:
        stg = f"{self.schema}.{staging_table(group.dataset)}"
        (joined,) = self._rows(
            f"SELECT count(*) FROM {stg} s JOIN {self.schema}.{STG_OBJECTS} o "
            f"ON o.grp = {group.index} AND {_attribution(group)}"
        )[0]
        if int(joined) != copied:
            raise LoadError(
                f"{group.dataset.name}: {copied} rows copied but {joined} belong to their objects by name "
                "(an object's rows do not match its key)"
            )

    def load_batch(self, batch: Batch) -> BatchResult:
        groups = self._groups(batch)
        if self.internal:
            try:
                self._put(batch, groups)
            except Exception as exc:  # nothing is written before the transaction: bronze is untouched
                raise LoadError(f"batch {batch.id} not staged: {exc}") from exc
        rows: dict[str, int] = {}
        self._execute("BEGIN")
        try:
            # The DELETE takes the shared staging table's lock, held to COMMIT: loads commit one at a
            # time, and loaded_at is read under it, so a later commit never carries an earlier
            # loaded_at (silver's watermark would skip its rows for good).
            self._execute(f"DELETE FROM {self.schema}.{STG_OBJECTS}")
            loaded_at = self._now()
            for group in groups:
                dataset = group.dataset
                stg = f"{self.schema}.{staging_table(dataset)}"
                self._execute(f"DELETE FROM {stg}")
                per_object = self._copied_rows(self._copy(batch, group), group)
                copied = sum(per_object.values())
                self._stage_manifest(group, per_object)
                self._check_attribution(group, copied)
                source = sqlgen.dedup_source(
                    dataset,
                    f"{stg} s JOIN {self.schema}.{STG_OBJECTS} o ON o.grp = {group.index} AND {_attribution(group)}",
                    "o.object_key",
                    batch.load_id,
                    loaded_at,
                    "snowflake",
                    row_prefix="s.",
                )
                self._execute(sqlgen.merge_dataset(self.schema, dataset, source))
                rows[dataset.name] = rows.get(dataset.name, 0) + copied
            self._execute(
                sqlgen.merge_ledger(
                    self.schema,
                    f"SELECT {', '.join(sqlgen.LEDGER_COLUMNS)} FROM {self.schema}.{STG_OBJECTS}",
                    batch.load_id,
                    loaded_at,
                    "snowflake",
                )
            )
            self._execute("COMMIT")
        except Exception as exc:
            self._execute("ROLLBACK")
            raise LoadError(f"batch {batch.id} rolled back: {exc}") from exc
        return BatchResult(rows)
