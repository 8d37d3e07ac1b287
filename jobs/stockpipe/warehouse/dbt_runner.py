"""Run dbt in-process (dbtRunner), with the project, profile and target taken from the settings.

Logs: one structured line per invocation (`dbt` field: command, models, tests, seconds, failures).
dbt's own console output is kept off the process's output (a build every 30 s would add ~110 lines
each); its full debug log goes to `dbt.log` under `<target dir>/logs` (or DBT_LOG_PATH), and what
the console would have shown is logged whole only when the invocation fails. No colour codes unless
stdout is a terminal.

The profile (dbt/profiles.yml) reads the same STOCKPIPE_WAREHOUSE__* variables as the loader. This
module exports the resolved settings into those variables for the run, so secrets that came from a
mounted secrets directory and relative paths resolved here reach dbt too.
"""

# SQL is built here from identifiers defined in code.
# ruff: noqa: S608

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stockpipe.warehouse.settings import WarehouseSettings

log = logging.getLogger(__name__)


def profile_env(settings: WarehouseSettings) -> dict[str, str]:
    """The environment dbt/profiles.yml reads.

    Secrets go only into DBT_ENV_SECRET_* variables (dbt scrubs them from its logs): with key-pair
    auth the private key's path, and no password at all; a password only when there is no key.
    """
    wh = settings.warehouse
    sf = wh.snowflake
    env = {
        "STOCKPIPE_WAREHOUSE__TARGET": wh.target,
        "STOCKPIPE_WAREHOUSE__DUCKDB_PATH": str(wh.duckdb_path.resolve()),
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__DATABASE": sf.database,
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__BRONZE_SCHEMA": sf.bronze_schema,
    }
    optional = {
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__ACCOUNT": sf.account,
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__USER": sf.user,
        "DBT_ENV_SECRET_SNOWFLAKE_PRIVATE_KEY_PATH": str(sf.private_key_file.resolve())
        if sf.private_key_file
        else None,
        "DBT_ENV_SECRET_SNOWFLAKE_PASSWORD": (
            sf.password.get_secret_value() if sf.password and not sf.private_key_file else None
        ),
        # dbt-snowflake picks key-pair auth from the key itself; the connector's JWT name is not dbt's.
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__AUTHENTICATOR": (
            sf.authenticator if sf.authenticator and sf.authenticator.upper() != "SNOWFLAKE_JWT" else None
        ),
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__ROLE": sf.role,
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__WAREHOUSE": sf.warehouse,
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__HOST": sf.host,
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__PORT": str(sf.port) if sf.port else None,
        "STOCKPIPE_WAREHOUSE__SNOWFLAKE__PROTOCOL": sf.protocol,
    }
    env.update({k: v for k, v in optional.items() if v})
    return env


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


# Each bronze table and the silver model that reads it (the root of the table's branch of the DAG).
SILVER_OF_BRONZE: dict[str, str] = {
    "daily_bars": "slv_daily_bars",
    "quotes": "slv_quotes",
    "trades": "slv_trades",
    "dlq": "slv_dead_letters",
}


def _newest_loads(settings: WarehouseSettings) -> dict[str, tuple[Any, Any]]:
    """(newest loaded_at in bronze, newest loaded_at in silver) per bronze table; silver None if never built."""
    queries = {
        table: (f"SELECT max(loaded_at) FROM {{bronze}}.{table}", f"SELECT max(loaded_at) FROM {{silver}}.{model}")
        for table, model in SILVER_OF_BRONZE.items()
    }
    result: dict[str, tuple[Any, Any]] = {}
    if settings.warehouse.target == "duckdb":
        import duckdb

        with duckdb.connect(str(settings.warehouse.duckdb_path), read_only=True) as conn:
            for table, (bronze_sql, silver_sql) in queries.items():
                bronze = conn.execute(bronze_sql.format(bronze="bronze")).fetchone()
                try:
                    silver = conn.execute(silver_sql.format(silver="silver")).fetchone()
                except duckdb.CatalogException:
                    silver = None
                result[table] = (bronze[0] if bronze else None, silver[0] if silver else None)
        return result
    from stockpipe.warehouse.snowpark_session import create_session

    sf = settings.warehouse.snowflake
    session = create_session(sf, "stockpipe-dbt-build")
    try:
        for table, (bronze_sql, silver_sql) in queries.items():
            newest_bronze = session.sql(bronze_sql.format(bronze=f"{sf.database}.{sf.bronze_schema}")).collect()
            try:
                newest_silver = session.sql(silver_sql.format(silver=f"{sf.database}.SILVER")).collect()
            except Exception:  # the model was never built: its branch needs a build
                newest_silver = []
            result[table] = (
                newest_bronze[0][0] if newest_bronze else None,
                newest_silver[0][0] if newest_silver else None,
            )
    finally:
        session.close()
    return result


def changed_branches(settings: WarehouseSettings) -> list[str] | None:
    """Bronze tables that received rows since their silver model last ran; None if silver was never built.

    dbt cannot tell which sources have new data; building only their branches of the DAG keeps the
    cost of a run after a load proportional to what the load brought (on Snowflake: fewer queries).
    """
    changed: list[str] = []
    for table, (bronze, silver) in _newest_loads(settings).items():
        if silver is None and bronze is not None:
            return None
        if bronze is not None and bronze > silver:
            changed.append(table)
    return changed


@dataclass(frozen=True)
class DbtOutcome:
    success: bool
    exception: str | None
    target_path: Path
    log_path: Path | None = None  # the directory of dbt's own dbt.log

    def summary(self) -> dict[str, Any]:
        """Counts from run_results.json: what each invocation's one log line says."""
        results = self.run_results().get("results", [])
        kinds = [str(r.get("unique_id", "")).split(".", 1)[0] for r in results]
        return {
            "models": kinds.count("model"),
            "tests": kinds.count("test"),
            "seeds": kinds.count("seed"),
            "failures": len(self.failures()),
        }

    def run_results(self) -> dict[str, Any]:
        path = self.target_path / "run_results.json"
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        return data

    def model_seconds(self) -> float:
        """The sum of the models' execution times in run_results.json (what the benchmark compares)."""
        return sum(
            float(r.get("execution_time") or 0.0)
            for r in self.run_results().get("results", [])
            if str(r.get("unique_id", "")).startswith("model.")
        )

    def failures(self) -> list[str]:
        return [
            f"{r.get('unique_id')}: {r.get('status')} {r.get('message') or ''}".strip()
            for r in self.run_results().get("results", [])
            if r.get("status") in ("error", "fail", "runtime error")
        ]


def _close_duckdb() -> None:
    """Close the database dbt-duckdb keeps open for the process (the profile's keep_open).

    One open database per invocation spares every model a re-open (and a checkpoint on close) of the
    file; once dbt is done, the file must be free for the loader, in this process or another one.
    dbt-duckdb only drops it at interpreter exit, so it is closed here (its class-level environment).
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # the duckdb adapter is not installed (a Snowflake-only image)
        return
    with DuckDBConnectionManager._LOCK:
        environment = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
    if environment is not None:
        environment.close()


def run_dbt(
    args: Sequence[str],
    settings: WarehouseSettings,
    target: str | None = None,
    target_path: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> DbtOutcome:
    """`dbt <args> --project-dir <dir> --profiles-dir <dir> --target <target>`, in this process."""
    from dbt.cli.main import dbtRunner

    project = settings.warehouse.dbt_project_dir.resolve()
    argv = [
        *args,
        "--project-dir", str(project),
        "--profiles-dir", str(project),
        "--target", target or settings.warehouse.target,
    ]  # fmt: skip
    if target_path is not None:
        argv += ["--target-path", str(target_path)]
    # dbt's own default (or DBT_TARGET_PATH), relative to the project directory.
    target_dir = (project / (target_path or os.environ.get("DBT_TARGET_PATH") or "target")).resolve()
    if settings.warehouse.target == "duckdb":
        settings.warehouse.duckdb_path.resolve().parent.mkdir(parents=True, exist_ok=True)
    # DBT_LOG_PATH (the caller's or the environment's) if set, else beside the target; relative: to the project.
    log_path = (extra_env or {}).get("DBT_LOG_PATH") or os.environ.get("DBT_LOG_PATH")
    log_dir = (project / log_path).resolve() if log_path else target_dir / "logs"
    colours = sys.stdout.isatty()
    argv += [
        "--log-path", str(log_dir),
        "--log-level", "none",  # the console: what it would show is captured below instead
        "--log-level-file", "debug",
        "--use-colors" if colours else "--no-use-colors",
        "--no-use-colors-file",
    ]  # fmt: skip
    # dbt would otherwise send anonymous usage events (dbt_project.yml turns them off too).
    env = {**profile_env(settings), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **(extra_env or {})}
    console: deque[str] = deque(maxlen=5000)  # bounded: a huge project's failure shows its last lines

    def capture(event: Any) -> None:
        if event.info.level in ("info", "warn", "error") and event.info.msg:
            console.append(str(event.info.msg))

    from stockpipe.warehouse.writerlock import warehouse_writer

    started = time.monotonic()
    # dbt writes the warehouse: one writer at a time (the lock is re-entrant for a caller that holds it).
    with warehouse_writer(settings), _environment(env):
        try:
            result = dbtRunner(callbacks=[capture]).invoke(argv)
        finally:
            _close_duckdb()
    exception = None if result.exception is None else str(result.exception)
    outcome = DbtOutcome(bool(result.success), exception, target_dir, log_dir)
    summary = {
        "command": " ".join(args),
        **outcome.summary(),
        "seconds": round(time.monotonic() - started, 3),
        "success": outcome.success,
        "log": str(log_dir / "dbt.log"),
    }
    if outcome.success:
        log.info("dbt %s: ok", args[0] if args else "", extra={"dbt": summary})
    else:
        log.error(
            "dbt %s failed; its output:\n%s",
            args[0] if args else "",
            "\n".join(console),
            extra={"dbt": {**summary, "exception": exception}},
        )
    return outcome
