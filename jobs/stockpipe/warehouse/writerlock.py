"""One writer at a time for the embedded warehouse (DuckDB), across processes.

DuckDB allows one read-write process per file: a second one fails to open it ("Could not set lock on
file"). Airflow serialises its own warehouse tasks with a one-slot pool (`STOCKPIPE_AIRFLOW__WAREHOUSE_POOL`),
but the continuous bronze loader and the compaction job run outside that pool. So every writer of
the file (`stockpipe load bronze`, `load dbt-build`, `load continuous`, `lake compact`) first takes an
exclusive advisory lock on `<file>.writer.lock` and waits for it (bounded), instead of failing on
DuckDB's own lock. The lock is re-entrant within a process (a load followed by a dbt build in the same
cycle) and is released when its holder exits, however it exits (the kernel drops flock locks).
Snowflake needs none: concurrent sessions are its own business.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stockpipe.warehouse.settings import WarehouseSettings

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = float(os.environ.get("STOCKPIPE_WAREHOUSE_WRITER_LOCK_TIMEOUT_S", "1800"))


class WriterLockTimeout(TimeoutError):
    """Another writer held the warehouse for longer than the timeout."""


_held: dict[tuple[str, int], tuple[int, int]] = {}  # (lock path, thread) -> (fd, depth)
_guard = threading.Lock()


def lock_path(duckdb_path: Path) -> Path:
    return duckdb_path.resolve().with_name(duckdb_path.name + ".writer.lock")


@contextmanager
def file_writer_lock(path: Path, timeout_s: float = DEFAULT_TIMEOUT_S, poll_s: float = 0.05) -> Iterator[float]:
    """Hold the exclusive lock on `path`; yields the seconds waited for it (re-entrant per thread)."""
    key = (str(path), threading.get_ident())
    with _guard:
        held = _held.get(key)
        if held is not None:
            _held[key] = (held[0], held[1] + 1)
    if held is not None:
        try:
            yield 0.0
        finally:
            _release(key)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key[0], os.O_RDWR | os.O_CREAT, 0o644)
    started = time.monotonic()
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - started > timeout_s:
                    raise WriterLockTimeout(
                        f"the warehouse writer lock {key[0]} was held by another writer for over {timeout_s:.0f} s"
                    ) from None
                time.sleep(poll_s)
    except BaseException:
        os.close(fd)
        raise
    with _guard:
        _held[key] = (fd, 1)
    waited = time.monotonic() - started
    if waited > 1:
        log.info("waited %.1f s for the warehouse writer lock", waited)
    try:
        yield waited
    finally:
        _release(key)


def _release(key: tuple[str, int]) -> None:
    with _guard:
        fd, depth = _held[key]
        if depth > 1:
            _held[key] = (fd, depth - 1)
            return
        del _held[key]
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@contextmanager
def warehouse_writer(settings: WarehouseSettings, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[float]:
    """The writer lock of the configured warehouse (a no-op for Snowflake); yields the seconds waited."""
    if settings.warehouse.target != "duckdb":
        yield 0.0
        return
    with file_writer_lock(lock_path(settings.warehouse.duckdb_path), timeout_s) as waited:
        yield waited
