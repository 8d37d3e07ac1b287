"""The dashboard's one query layer: the same parameterised questions on DuckDB and on Snowflake.

Every question is a fixed SQL text with named parameters (`:symbol`); values never become SQL text on
DuckDB, and on Snowflake the connector binds them (pyformat, escaped by the driver). Schema names
come from the settings, never from a user.

DuckDB allows one writer per file, and a reader's lock makes a bronze load or `dbt build` fail to open
it. So the dashboard never opens the warehouse file: it copies it (a plain file copy takes no DuckDB
lock) when it changed and no writer holds it, checks that the file did not change during the copy,
and reads the copy. While a load or a build runs, pages show the last snapshot and its time.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import re
import shutil
import struct
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import pandas as pd

from stockpipe.warehouse.settings import SnowflakeSettings

if TYPE_CHECKING:  # a Snowpark Session only on Snowflake; DuckDB runs never import it
    from snowflake.snowpark import Session

log = logging.getLogger(__name__)

_PARAM = re.compile(r"(?<![:\w]):([a-z_]+)")
# struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid (and padding).
_FLOCK = "hhqqi4x"


class WarehouseBusy(RuntimeError):
    """No snapshot yet and a writer holds the warehouse file: try again when it is done."""


class WarehouseMissing(RuntimeError):
    """The warehouse has not been built (no file, or no gold tables)."""


@dataclass(frozen=True)
class Snapshot:
    """What the pages read: when the copy was taken and the source file's modification time then."""

    generation: int
    taken_at: datetime
    source_modified_at: datetime | None
    kind: str  # "duckdb snapshot" or "snowflake live"


class Reader(Protocol):
    def refresh(self) -> Snapshot: ...

    def frame(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame: ...

    def close(self) -> None: ...


def writer_pid(path: Path) -> int | None:
    """The pid of a process holding DuckDB's write lock on `path` (fcntl F_GETLK: asks, takes nothing)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack(_FLOCK, fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0))
    finally:
        os.close(fd)
    kind, _whence, _start, _len, pid = struct.unpack(_FLOCK, answer)
    return int(pid) if kind == fcntl.F_WRLCK else None


def _signature(path: Path) -> tuple[tuple[int, int, int], ...]:
    """Identity and size/mtime of the file and its WAL: any write changes it."""
    parts = []
    for p in (path, path.with_name(path.name + ".wal")):
        try:
            st = p.stat()
        except FileNotFoundError:
            parts.append((0, -1, 0))
        else:
            parts.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(parts)


class DuckDBSnapshotReader:
    """Reads a private copy of the DuckDB warehouse, renewed when the source changed and no writer holds it.

    Disk: the snapshot directory holds at most two copies' worth: the current copy plus either the
    previous one (kept `grace_s` for sessions still reading it) or the one being copied; a renewal
    waits until the previous copy is gone. Renewals happen at most every `refresh_s`, not after every
    loader write. Copies are named by this reader's start (a container restart keeps its PID, 1), and
    a start reclaims every copy whose owner no longer holds its lock file (a reader that is gone).
    """

    def __init__(
        self,
        source: Path,
        snapshot_dir: Path,
        wait_s: float = 30.0,
        poll_s: float = 0.25,
        refresh_s: float = 0.0,
        grace_s: float = 0.0,
    ) -> None:
        self.source = source
        self.dir = snapshot_dir
        self.wait_s = wait_s
        self.poll_s = poll_s
        self.refresh_s = refresh_s
        self.grace_s = grace_s
        self.start = uuid.uuid4().hex[:12]
        self._lock = threading.Lock()
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._file: Path | None = None
        # The previous copy, its connection and when it was retired: removed after the grace period.
        self._retired: tuple[Path, duckdb.DuckDBPyConnection, float] | None = None
        self._copied_at = -math.inf
        self._signature: tuple[tuple[int, int, int], ...] | None = None
        self._snapshot: Snapshot | None = None
        self.dir.mkdir(parents=True, exist_ok=True)
        # Held while this reader lives (the kernel drops it when the process ends, however it ends).
        self._owner = os.open(self.dir / f"warehouse-{self.start}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._remove_orphans()

    def _remove_orphans(self) -> None:
        """Copies left by readers that are gone (one warehouse file each: worth reclaiming)."""
        for lock in self.dir.glob("warehouse-*.lock"):
            start = lock.name.removeprefix("warehouse-").removesuffix(".lock")
            if start == self.start:
                continue
            fd = os.open(lock, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # another live reader's
            finally:
                os.close(fd)
            for path in self.dir.glob(f"warehouse-{start}-*"):
                path.unlink(missing_ok=True)
            lock.unlink(missing_ok=True)
        for path in self.dir.glob("warehouse-*-*.duckdb*"):  # an older version's names (by PID), or no lock
            if not (self.dir / f"warehouse-{path.name.split('-')[1]}.lock").exists():
                path.unlink(missing_ok=True)

    @staticmethod
    def _remove(path: Path) -> None:
        for p in (path, path.with_name(path.name + ".wal"), path.with_name(path.name + ".tmp")):
            p.unlink(missing_ok=True)

    def _reap(self, force: bool = False) -> bool:
        """Remove the previous copy once its grace period is over; True when none is left."""
        if self._retired is None:
            return True
        path, conn, retired_at = self._retired
        if not force and time.monotonic() - retired_at < self.grace_s:
            return False
        conn.close()
        self._remove(path)
        self._retired = None
        return True

    def _copy(self, generation: int) -> Path | None:
        """A consistent copy, or None when a writer is active or the file moved during the copy."""
        before = _signature(self.source)
        if writer_pid(self.source) is not None:
            return None
        target = self.dir / f"warehouse-{self.start}-{generation}.duckdb"
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(self.source, tmp)
        wal = self.source.with_name(self.source.name + ".wal")
        if wal.exists():  # left by a writer that stopped without a checkpoint: DuckDB replays it
            shutil.copyfile(wal, target.with_name(target.name + ".wal"))
        if _signature(self.source) != before or writer_pid(self.source) is not None:
            self._remove(target)
            return None
        tmp.rename(target)
        self._signature = before
        return target

    def refresh(self) -> Snapshot:
        """The current snapshot, renewed first if the warehouse changed since and a renewal is due."""
        with self._lock:
            if not self.source.exists():
                raise WarehouseMissing(f"no DuckDB warehouse at {self.source}: run `stockpipe load bronze` and dbt")
            reaped = self._reap()
            if self._snapshot is not None:
                too_soon = time.monotonic() - self._copied_at < self.refresh_s
                if too_soon or not reaped or _signature(self.source) == self._signature:
                    return self._snapshot
            generation = (self._snapshot.generation if self._snapshot else 0) + 1
            deadline = time.monotonic() + (0 if self._snapshot else self.wait_s)
            while (copied := self._copy(generation)) is None:
                if self._snapshot is not None:
                    return self._snapshot  # a writer is busy: keep showing the last consistent copy
                if time.monotonic() >= deadline:
                    raise WarehouseBusy(
                        f"{self.source} is being written (pid {writer_pid(self.source)}): "
                        "the dashboard shows it when the load or dbt build is done"
                    )
                time.sleep(self.poll_s)
            conn = duckdb.connect(str(copied), read_only=True)
            if self._conn is not None and self._file is not None:
                # Sessions may still be reading the previous copy: it goes after the grace period.
                self._retired = (self._file, self._conn, time.monotonic())
                if self.grace_s <= 0:
                    self._reap(force=True)
            self._conn, self._file = conn, copied
            self._copied_at = time.monotonic()
            modified = datetime.fromtimestamp(self.source.stat().st_mtime, UTC)
            self._snapshot = Snapshot(generation, datetime.now(UTC), modified, "duckdb snapshot")
            return self._snapshot

    def frame(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        self.refresh()
        assert self._conn is not None
        text = _PARAM.sub(r"$\1", sql.format(gold="gold", bronze="bronze"))
        with self._conn.cursor() as cur:  # one cursor per call: sessions run in threads
            return cur.execute(text, dict(params or {})).df()

    def close(self) -> None:
        with self._lock:
            self._reap(force=True)
            if self._conn is not None:
                self._conn.close()
            self._conn, self._file = None, None
            for path in self.dir.glob(f"warehouse-{self.start}-*"):
                path.unlink(missing_ok=True)
            (self.dir / f"warehouse-{self.start}.lock").unlink(missing_ok=True)
            os.close(self._owner)


class SnowflakeReader:
    """Live queries on Snowflake's gold and bronze schemas through the dashboard's one Snowpark session
    (key-pair or password), kept for the process and replaced once found closed."""

    def __init__(self, settings: SnowflakeSettings, gold_schema: str = "GOLD") -> None:
        from stockpipe.warehouse.snowpark_session import KeptSession

        self.settings = settings
        self.gold = f"{settings.database}.{gold_schema}"
        self.bronze = f"{settings.database}.{settings.bronze_schema}"
        self._lock = threading.Lock()
        self._session = KeptSession(settings, "stockpipe-dashboard", schema=gold_schema)

    def _connection(self) -> Any:
        """The session's connection: named parameters and the result's column names, as pages need them."""
        session: Session = self._session.get()
        return session.connection

    def refresh(self) -> Snapshot:
        return Snapshot(0, datetime.now(UTC), None, "snowflake live")

    def frame(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        # Snowpark's connection binds on the server, qmark style: :name becomes ? with its value in order.
        names: list[str] = []

        def qmark(match: re.Match[str]) -> str:
            names.append(match.group(1))
            return "?"

        text = _PARAM.sub(qmark, sql.format(gold=self.gold, bronze=self.bronze))
        values = [dict(params or {})[name] for name in names]
        with self._lock:
            cur = self._connection().cursor()
            try:
                cur.execute(text, values or None)
                rows = cur.fetchall()
                columns = [d[0].lower() for d in cur.description]
            finally:
                cur.close()
        frame = pd.DataFrame.from_records(rows, columns=columns)
        for column in frame.columns:  # Snowflake NUMBERs arrive as Decimal: the pages compute with floats
            if frame[column].dtype == object and len(frame) and type(frame[column].iloc[0]).__name__ == "Decimal":
                frame[column] = frame[column].astype(float)
        return frame

    def close(self) -> None:
        with self._lock:
            self._session.close()


# -- the questions ------------------------------------------------------------------------------------


def as_of(reader: Reader) -> pd.DataFrame:
    """When the data shown was loaded, and the newest session it holds."""
    return reader.frame(
        """select
            (select max(loaded_at) from {gold}.mart_symbol_daily) as bars_loaded_at,
            (select max(loaded_at) from {gold}.fct_quotes) as quotes_loaded_at,
            (select max(last_bar_date) from {gold}.dim_symbol) as last_session,
            (select max(last_quote_ts) from {gold}.dim_symbol) as last_quote_ts"""
    )


def symbols(reader: Reader) -> pd.DataFrame:
    return reader.frame(
        """select symbol, first_bar_date, last_bar_date, has_daily_bars, has_quotes, has_trades
           from {gold}.dim_symbol order by symbol"""
    )


def latest_sessions(reader: Reader) -> pd.DataFrame:
    """Per symbol, its newest session: close, daily and YTD return, 30-session volatility, volume."""
    return reader.frame(
        """select mart.symbol, mart.session_date, mart.close_price, mart.daily_return, mart.ytd_return,
                  mart.volatility_30, mart.ma_30, bars.volume, bars.dollar_volume
           from {gold}.mart_symbol_daily as mart
           inner join {gold}.dim_symbol as sym
               on mart.symbol = sym.symbol and mart.session_date = sym.last_bar_date
           left join {gold}.fct_daily_bars as bars
               on mart.symbol = bars.symbol and mart.session_date = bars.session_date
           order by mart.symbol"""
    )


def daily_returns_since(reader: Reader, sessions: int) -> pd.DataFrame:
    """Daily returns of every symbol over the last `sessions` sessions of the calendar that have bars."""
    return reader.frame(
        """select mart.symbol, mart.session_date, mart.daily_return
           from {gold}.mart_symbol_daily as mart
           where mart.session_date >= (
               select min(recent.date_day) from (
                   select date_day from {gold}.dim_date
                   where is_session and date_day <= (select max(last_bar_date) from {gold}.dim_symbol)
                   order by date_day desc limit :sessions
               ) as recent
           )""",
        {"sessions": sessions},
    )


def symbol_history(reader: Reader, symbol: str, start: date, end: date) -> pd.DataFrame:
    """A symbol's daily bars (raw and adjusted) and their statistics between two dates (both included)."""
    return reader.frame(
        """select bars.session_date, bars.open_price, bars.high_price, bars.low_price, bars.close_price,
                  bars.volume, bars.adj_open, bars.adj_high, bars.adj_low, bars.adj_close, bars.adj_volume,
                  bars.split_factor, bars.dividend_cash, mart.daily_return, mart.ma_7, mart.ma_30, mart.ma_90,
                  mart.volatility_30, mart.ytd_return, mart.drawdown
           from {gold}.fct_daily_bars as bars
           left join {gold}.mart_symbol_daily as mart
               on bars.symbol = mart.symbol and bars.session_date = mart.session_date
           where bars.symbol = :symbol and bars.session_date between :start and :end
           order by bars.session_date""",
        {"symbol": symbol, "start": start, "end": end},
    )


def quote_sessions(reader: Reader, symbol: str) -> pd.DataFrame:
    """The sessions that have quotes for a symbol, newest first."""
    return reader.frame(
        """select session_date, last_price, day_open, day_high, day_low, prev_close, last_vs_prev_close,
                  high_vs_prev_close, low_vs_prev_close, quote_count, last_quote_ts
           from {gold}.mart_intraday_range where symbol = :symbol order by session_date desc""",
        {"symbol": symbol},
    )


def intraday_quotes(reader: Reader, symbol: str, day: date) -> pd.DataFrame:
    return reader.frame(
        """select quote_ts, price, day_high, day_low, day_open, prev_close, is_regular_session
           from {gold}.fct_quotes where symbol = :symbol and session_date = :day order by quote_ts""",
        {"symbol": symbol, "day": day},
    )


def intraday_trades(reader: Reader, symbol: str, day: date) -> pd.DataFrame:
    return reader.frame(
        """select trade_ts, price, size, conditions, is_regular_session
           from {gold}.fct_trades where symbol = :symbol and session_date = :day order by trade_ts, seq""",
        {"symbol": symbol, "day": day},
    )


def freshness(reader: Reader) -> pd.DataFrame:
    return reader.frame(
        """select symbol, freshness_status, last_bar_date, bar_sessions_behind, last_quote_ts,
                  quote_market_minutes_behind, last_trade_ts, trade_market_minutes_behind, measured_at
           from {gold}.mart_data_freshness order by symbol"""
    )


def dead_letters(reader: Reader, since: date) -> pd.DataFrame:
    return reader.frame(
        """select detected_date, source_topic, reason_kind, dead_letters, first_detected_at, last_detected_at
           from {gold}.fct_dead_letters_daily where detected_date >= :since
           order by detected_date desc, dead_letters desc, source_topic, reason_kind""",
        {"since": since},
    )


def recent_loads(reader: Reader, loads: int) -> pd.DataFrame:
    """Objects, rows and bytes per dataset of the last `loads` bronze loads (the load ledger)."""
    return reader.frame(
        """select ledger.load_id, ledger.dataset, min(ledger.loaded_at) as loaded_at,
                  count(*) as objects, cast(sum(ledger.row_count) as bigint) as row_count,
                  cast(sum(ledger.size) as bigint) as bytes
           from {bronze}.load_ledger as ledger
           inner join (
               select load_id from {bronze}.load_ledger group by load_id order by max(loaded_at) desc limit :loads
           ) as recent on ledger.load_id = recent.load_id
           group by ledger.load_id, ledger.dataset
           order by loaded_at desc, ledger.dataset""",
        {"loads": loads},
    )


def lake_objects(reader: Reader) -> pd.DataFrame:
    """The lake objects bronze holds, per dataset."""
    return reader.frame(
        """select dataset, count(*) as objects, cast(sum(row_count) as bigint) as row_count,
                  cast(sum(size) as bigint) as bytes,
                  max(loaded_at) as last_loaded_at
           from {bronze}.load_ledger group by dataset order by dataset"""
    )
