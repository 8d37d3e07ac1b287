"""The dashboard's DuckDB reader never holds a lock a writer needs, and shows only consistent copies."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from stockpipe.dashboard import queries

WRITER = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
conn.execute("INSERT INTO gold.t VALUES (2)")
print("writing", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("INSERT INTO gold.t VALUES (3)")
conn.close()
"""


def make_warehouse(path: Path) -> None:
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE SCHEMA gold; CREATE TABLE gold.t (v INTEGER); INSERT INTO gold.t VALUES (1)")


def writer(path: Path, hold_s: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(hold_s)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "writing"
    return proc


def values(reader: queries.Reader) -> list[int]:
    return sorted(reader.frame("select v from {gold}.t")["v"].tolist())


def test_a_writer_opens_the_file_while_the_dashboard_reads_and_the_dashboard_keeps_its_last_copy(
    tmp_path: Path,
) -> None:
    source = tmp_path / "wh.duckdb"
    make_warehouse(source)
    reader = queries.DuckDBSnapshotReader(source, tmp_path / "snap")
    try:
        assert values(reader) == [1]
        first = reader.refresh()
        proc = writer(source, 1.5)  # would fail to open the file if the dashboard held a lock on it
        assert queries.writer_pid(source) == proc.pid
        for _ in range(5):  # reads go on, from the last consistent copy
            assert values(reader) == [1]
            assert reader.refresh().generation == first.generation
        assert proc.wait(30) == 0
        assert queries.writer_pid(source) is None
        assert values(reader) == [1, 2, 3]  # the writer is done: the next read takes a new copy
        assert reader.refresh().generation == first.generation + 1
    finally:
        reader.close()
    assert list((tmp_path / "snap").iterdir()) == []


def test_without_a_copy_yet_the_reader_waits_for_the_writer_then_says_it_is_busy(tmp_path: Path) -> None:
    source = tmp_path / "wh.duckdb"
    make_warehouse(source)
    proc = writer(source, 5)
    reader = queries.DuckDBSnapshotReader(source, tmp_path / "snap", wait_s=0.5, poll_s=0.1)
    started = time.monotonic()
    with pytest.raises(queries.WarehouseBusy, match="being written"):
        reader.refresh()
    assert 0.5 <= time.monotonic() - started < 4
    proc.kill()
    proc.wait()


def test_a_missing_warehouse_is_a_clear_message(tmp_path: Path) -> None:
    reader = queries.DuckDBSnapshotReader(tmp_path / "none.duckdb", tmp_path / "snap")
    with pytest.raises(queries.WarehouseMissing, match="stockpipe load bronze"):
        reader.refresh()


def test_parameters_are_bound_never_spliced(tmp_path: Path) -> None:
    source = tmp_path / "wh.duckdb"
    make_warehouse(source)
    reader = queries.DuckDBSnapshotReader(source, tmp_path / "snap")
    try:
        hostile = "1); DROP TABLE gold.t; --"
        frame = reader.frame("select count(*) as n from {gold}.t where cast(v as varchar) = :v", {"v": hostile})
        assert frame["n"].tolist() == [0]
        assert values(reader) == [1]
    finally:
        reader.close()
