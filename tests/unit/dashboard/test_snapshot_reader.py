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


def _copies(directory: Path) -> list[str]:
    """Warehouse copies in the snapshot directory, whole or being copied (WAL files go with their copy)."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith((".duckdb", ".duckdb.tmp")))


def test_the_snapshot_dir_never_holds_more_than_one_copy_plus_one_being_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "wh.duckdb"
    make_warehouse(source)
    snap = tmp_path / "snap"
    seen: list[list[str]] = []
    copy = queries.shutil.copyfile

    def watched_copy(src: Path, dst: Path) -> Path:
        result = copy(src, dst)
        seen.append(_copies(snap))  # the copy in progress is on disk now
        return Path(result)

    monkeypatch.setattr(queries.shutil, "copyfile", watched_copy)
    reader = queries.DuckDBSnapshotReader(source, snap, grace_s=0.3)
    try:
        generations = set()
        deadline = time.monotonic() + 4
        value = 10
        while time.monotonic() < deadline:
            with duckdb.connect(str(source)) as conn:
                conn.execute("INSERT INTO gold.t VALUES (?)", [value])
            value += 1
            generations.add(reader.refresh().generation)
            assert values(reader)[-1] <= value
            seen.append(_copies(snap))
            time.sleep(0.05)
    finally:
        reader.close()
    assert len(generations) >= 5  # it did renew, each time after the previous copy's grace period
    assert max(len(s) for s in seen) == 2, seen
    assert list(snap.iterdir()) == []


def test_a_new_snapshot_is_taken_at_most_every_refresh_interval(tmp_path: Path) -> None:
    source = tmp_path / "wh.duckdb"
    make_warehouse(source)
    reader = queries.DuckDBSnapshotReader(source, tmp_path / "snap", refresh_s=1.0)
    try:
        first = reader.refresh().generation
        with duckdb.connect(str(source)) as conn:
            conn.execute("INSERT INTO gold.t VALUES (2)")
        assert reader.refresh().generation == first
        assert values(reader) == [1]
        time.sleep(1.1)
        assert reader.refresh().generation == first + 1
        assert values(reader) == [1, 2]
    finally:
        reader.close()


READER = """
import sys, time
from pathlib import Path
from stockpipe.dashboard import queries
reader = queries.DuckDBSnapshotReader(Path(sys.argv[1]), Path(sys.argv[2]))
reader.refresh()
print("copied", flush=True)
time.sleep(600)
"""


def test_a_start_reclaims_the_copies_of_readers_that_are_gone_and_keeps_live_ones(tmp_path: Path) -> None:
    source = tmp_path / "wh.duckdb"
    make_warehouse(source)
    snap = tmp_path / "snap"
    gone = subprocess.Popen([sys.executable, "-c", READER, str(source), str(snap)], stdout=subprocess.PIPE, text=True)
    live = subprocess.Popen([sys.executable, "-c", READER, str(source), str(snap)], stdout=subprocess.PIPE, text=True)
    try:
        for proc in (gone, live):
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "copied"
        assert len(_copies(snap)) == 2
        gone.kill()  # as a container restart does: no clean-up ran
        gone.wait(30)
        (snap / "warehouse-1-7.duckdb").write_bytes(b"a copy named by PID, by an older version")
        reader = queries.DuckDBSnapshotReader(source, snap)
        try:
            assert len(_copies(snap)) == 1  # the live reader's copy only
            assert values(reader) == [1]
            assert len(_copies(snap)) == 2
        finally:
            reader.close()
    finally:
        live.kill()
        live.wait(30)
