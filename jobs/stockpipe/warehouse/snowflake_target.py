"""The production warehouse: bronze in Snowflake, loaded with COPY INTO from a stage and MERGE.

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
from typing import Any

from stockpipe.lake.store import Lake
from stockpipe.warehouse import ddl, sqlgen
from stockpipe.warehouse.datasets import DATASETS, Dataset
from stockpipe.warehouse.listing import LakeObject
from stockpipe.warehouse.loader import Batch, BatchResult, LoadError
from stockpipe.warehouse.settings import SnowflakeSettings

log = logging.getLogger(__name__)

COPY_FILES_LIMIT = 1000  # Snowflake's limit on FILES = (...)
STG_OBJECTS = "STG_OBJECTS"


def connect(settings: SnowflakeSettings, **overrides: Any) -> Any:
    """A snowflake-connector-python connection; the session works in UTC."""
    import snowflake.connector

    kwargs: dict[str, Any] = {
        "account": settings.account,
        "user": settings.user,
        "role": settings.role,
        "warehouse": settings.warehouse,
        "database": settings.database,
        "schema": settings.bronze_schema,
        "application": "stockpipe",
        "session_parameters": {
            "TIMEZONE": "UTC",
            "QUERY_TAG": "stockpipe-load-bronze",
            "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False,
        },
    }
    if settings.password is not None:
        kwargs["password"] = settings.password.get_secret_value()
    if settings.authenticator:
        kwargs["authenticator"] = settings.authenticator
    if settings.private_key_file:
        kwargs["private_key_file"] = str(settings.private_key_file)
    if settings.host:
        kwargs.update(host=settings.host, port=settings.port or 443, protocol=settings.protocol)
    kwargs.update(overrides)
    return snowflake.connector.connect(**{k: v for k, v in kwargs.items() if v is not None})


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

    def __init__(self, conn: Any, lake: Lake, settings: SnowflakeSettings) -> None:
        self.conn = conn
        self.lake = lake
        self.settings = settings
        self.schema = f"{settings.database}.{settings.bronze_schema}"
        self.stage = f"{self.schema}.{settings.stage_name}"
        self.internal = settings.stage_mode == "internal"

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> SnowflakeTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        cur = self.conn.cursor()
        cur.execute(sql, params) if params is not None else cur.execute(sql)
        return cur

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self._execute(sql).fetchall()
        return rows

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
                    self._execute(
                        f"PUT {sqlgen.string_literal('file://' + local, 'snowflake')} {target} "
                        "AUTO_COMPRESS = FALSE OVERWRITE = TRUE"
                    )

    def _copy_sql(self, batch: Batch, group: _Group) -> str:
        dataset = group.dataset
        options = "FILE_FORMAT = (TYPE = PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE FORCE = TRUE"
        into = f"COPY INTO {self.schema}.{staging_table(dataset)}"
        if self.internal:
            # The batch's own stage path holds exactly the group's objects; PURGE removes the upload.
            return f"{into} FROM @{self.stage}/{batch.id}/g{group.index}/{dataset.prefix}/ {options} PURGE = TRUE"
        files = ", ".join(
            sqlgen.string_literal(o.key.removeprefix(dataset.prefix + "/"), "snowflake") for o in group.objects
        )
        return f"{into} FROM @{self.stage}/{dataset.prefix}/ FILES = ({files}) {options}"

    def copy_statements(self, batch: Batch) -> list[str]:
        """The COPY INTO statements of a batch (external stage: FILES lists of the lake keys)."""
        return [self._copy_sql(batch, g) for g in self._groups(batch)]

    def _copied_rows(self, cur: Any, group: _Group) -> dict[str, int]:
        """Rows loaded per object from COPY's result (file names end with the object's key)."""
        names = [d[0].lower() for d in cur.description]
        file_i, status_i, rows_i = names.index("file"), names.index("status"), names.index("rows_loaded")
        wanted = {o.key for o in group.objects}
        by_key: dict[str, int] = {}
        for row in cur.fetchall():
            if str(row[status_i]).upper() != "LOADED":
                raise LoadError(f"COPY of {row[file_i]} ended {row[status_i]}")
            # A stage path ends with the object's key: raw/<dataset>/dt=<day>/<file>.
            key = "/".join(str(row[file_i]).split("/")[-4:])
            if key not in wanted:
                raise LoadError(f"COPY loaded {row[file_i]}, which is no object of the batch")
            by_key[key] = int(row[rows_i])
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
        self.conn.cursor().executemany(
            f"INSERT INTO {self.schema}.{STG_OBJECTS} (grp, object_key, object_dir, dataset, size, etag, row_count, "
            "kafka_partition, first_offset, last_offset, symbol, dt) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            values,
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
                per_object = self._copied_rows(self._execute(self._copy_sql(batch, group)), group)
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
