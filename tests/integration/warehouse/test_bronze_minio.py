"""Lake -> bronze on DuckDB with the lake on the real local MinIO (each batch spooled through Arrow's S3 client)."""

# Queries name tables and columns defined in the code.
# ruff: noqa: S608

from __future__ import annotations

import http.client
import io
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stockpipe.batch import lakeio
from stockpipe.contracts.messages import QUOTE_V1
from stockpipe.lake.layout import DAILY_BARS, BatchObject, StreamObject
from stockpipe.lake.store import Lake
from stockpipe.marketdata.history import HistoryBar
from stockpipe.settings import LakeSettings
from stockpipe.warehouse.datasets import Dataset
from stockpipe.warehouse.duckdb_target import DuckDBTarget, S3SpoolReader, spool_dir
from stockpipe.warehouse.listing import LakeObject
from stockpipe.warehouse.loader import BronzeLoader, LoadError
from stockpipe.warehouse.settings import S3FetchSettings
from stockpipe_dev.localservices.minio import MinioServer
from stockpipe_dev.localservices.process import free_port
from stockpipe_dev.localservices.toxiproxy import Toxiproxy

from .conftest import SyntheticLake


class WatchedSpoolReader(S3SpoolReader):
    """The S3 reader of production, noting the files in its spool while each batch is open."""

    def __init__(self, lake: Lake, spool: Path) -> None:
        super().__init__(lake, spool)
        self.spooled: dict[str, int] = {}

    def open(
        self, conn: duckdb.DuckDBPyConnection, dataset: Dataset, objects: Sequence[LakeObject], name: str
    ) -> dict[str, int]:
        counts = super().open(conn, dataset, objects, name)
        self.spooled[dataset.name] = sum(1 for _ in self.spool.rglob("*.parquet"))
        return counts


def bronze_counts(target: DuckDBTarget) -> dict[str, int]:
    counts = {}
    for table in ("quotes", "trades", "daily_bars", "dlq"):
        row = target.conn.execute(f"SELECT count(*) FROM bronze.{table}").fetchone()
        assert row is not None
        counts[table] = int(row[0])
    return counts


def test_minio_lake_loads_into_duckdb_and_a_second_load_changes_nothing(
    minio_lake: SyntheticLake, tmp_path: Path
) -> None:
    lake = minio_lake.lake
    assert not lake.is_local
    with DuckDBTarget(tmp_path / "wh.duckdb", lake) as target:
        assert isinstance(target.reader, S3SpoolReader)
        report = BronzeLoader(lake, target).run()
        assert report.loaded_objects == minio_lake.objects
        assert bronze_counts(target) == minio_lake.rows
        ledger = target.conn.execute("SELECT count(*), sum(row_count) FROM bronze.load_ledger").fetchone()
        assert ledger == (minio_lake.objects, sum(report.rows.values()))
        # S3 ETags (content MD5s) are what the ledger remembers.
        etags = dict(target.conn.execute("SELECT object_key, etag FROM bronze.load_ledger").fetchall())
        assert etags == {o.key: o.etag for o in lake.walk("raw")}

        before = target.conn.execute("SELECT * FROM bronze.trades ORDER BY ALL").fetchall()
        again = BronzeLoader(lake, target).run()
        # Only the partitions from two days before the newest loaded one on are listed again.
        assert (again.pending, again.batches) == (0, 0)
        assert 0 < again.listed < minio_lake.objects
        full = BronzeLoader(lake, target, listing="full").run()
        assert (full.listed, full.pending, full.batches) == (minio_lake.objects, 0, 0)
        assert target.conn.execute("SELECT * FROM bronze.trades ORDER BY ALL").fetchall() == before
    # Each batch's spool is gone with the batch.
    assert list(spool_dir(tmp_path / "wh.duckdb").iterdir()) == []


def test_a_batch_is_read_from_a_local_spool_that_is_removed_after_it(minio_lake: SyntheticLake, tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    with DuckDBTarget(db, minio_lake.lake) as target:
        reader = WatchedSpoolReader(minio_lake.lake, spool_dir(db))
        target.reader = reader
        report = BronzeLoader(minio_lake.lake, target).run()
        assert report.batches == 1
        assert bronze_counts(target) == minio_lake.rows
    # While a dataset's relation was open, its objects lay in the spool (with those opened before it).
    opened = 0
    for dataset in reader.spooled:
        opened += len(minio_lake.keys[dataset])
        assert reader.spooled[dataset] == opened
    assert set(reader.spooled) == set(minio_lake.keys)
    assert list(spool_dir(db).iterdir()) == []


def test_an_object_rewritten_after_the_listing_fails_its_batch_and_loads_next_time(
    minio_lake: SyntheticLake, tmp_path: Path
) -> None:
    lake = minio_lake.lake
    key = minio_lake.keys["quotes"][0]
    original = pq.read_table(io.BytesIO(lake.read(key)))
    rewritten = lakeio.encode(original.slice(0, original.num_rows - 1))

    class RewritingReader(S3SpoolReader):
        """Rewrites one object between the loader's listing and its read, once."""

        def open(
            self, conn: duckdb.DuckDBPyConnection, dataset: Dataset, objects: Sequence[LakeObject], name: str
        ) -> dict[str, int]:
            if lake.read(key) != rewritten:
                lake.write_atomic(key, rewritten)
            return super().open(conn, dataset, objects, name)

    db = tmp_path / "wh.duckdb"
    with DuckDBTarget(db, lake) as target:
        target.reader = RewritingReader(lake, spool_dir(db))
        with pytest.raises(LoadError, match="changed after the listing") as failed:
            BronzeLoader(lake, target).run()
        assert key in str(failed.value)
        assert sum(bronze_counts(target).values()) == 0
        assert target.conn.execute("SELECT count(*) FROM bronze.load_ledger").fetchone() == (0,)
        assert list(spool_dir(db).iterdir()) == []
        # The next load lists the object as it is now and records that version.
        report = BronzeLoader(lake, target).run()
        assert report.loaded_objects == minio_lake.objects
        assert bronze_counts(target)["quotes"] == minio_lake.rows["quotes"] - 1
        etag = target.conn.execute("SELECT etag FROM bronze.load_ledger WHERE object_key = ?", [key]).fetchone()
        assert etag == (next(o.etag for o in lake.walk("raw") if o.key == key),)


@pytest.mark.parametrize("verify_md5", [True, False], ids=["md5", "response-etag"])
def test_a_same_size_rewrite_after_the_listing_fails_its_batch(
    minio_lake: SyntheticLake, tmp_path: Path, verify_md5: bool
) -> None:
    """Same size, other bytes: caught by the MD5 of what was read, or by the ETag the read's answer names."""
    lake = minio_lake.lake
    key = minio_lake.keys["quotes"][0]
    original = lake.read(key)
    middle = len(original) // 2
    same_size = original[:middle] + bytes([original[middle] ^ 0xFF]) + original[middle + 1 :]

    class RewritingReader(S3SpoolReader):
        def open(
            self, conn: duckdb.DuckDBPyConnection, dataset: Dataset, objects: Sequence[LakeObject], name: str
        ) -> dict[str, int]:
            if lake.read(key) == original:
                lake.write_atomic(key, same_size)
            return super().open(conn, dataset, objects, name)

    db = tmp_path / "wh.duckdb"
    with DuckDBTarget(db, lake) as target:
        target.reader = RewritingReader(lake, spool_dir(db), fetch=S3FetchSettings(verify_md5=verify_md5))
        with pytest.raises(LoadError, match="changed after the listing") as failed:
            BronzeLoader(lake, target).run()
        assert key in str(failed.value)
        assert target.conn.execute("SELECT count(*) FROM bronze.load_ledger").fetchone() == (0,)
        assert list(spool_dir(db).iterdir()) == []


@pytest.fixture
def toxic_s3(minio_server: MinioServer, s3_lake: LakeSettings, tmp_path: Path) -> Iterator[tuple[Toxiproxy, str]]:
    """Toxiproxy in front of MinIO: (the proxy, its S3 endpoint)."""
    toxi = Toxiproxy(tmp_path / "toxiproxy", free_port())
    record = toxi.start()
    try:
        address = toxi.proxy("s3", free_port(), urlsplit(minio_server.endpoint).netloc)
        yield toxi, f"http://{address}"
    finally:
        Toxiproxy.stop(record)


def test_a_stalled_get_fails_within_the_timeout_and_the_next_load_loads(
    minio_lake: SyntheticLake, toxic_s3: tuple[Toxiproxy, str], tmp_path: Path
) -> None:
    toxi, endpoint = toxic_s3
    lake = Lake(minio_lake.settings.model_copy(update={"s3_endpoint_url": endpoint}))
    fetch = S3FetchSettings(request_timeout_seconds=2, connect_timeout_seconds=2, max_attempts=2)

    class StallingReader(S3SpoolReader):
        """Stalls the link (no byte passes, nothing closes) after the listing, before the reads."""

        def open(
            self, conn: duckdb.DuckDBPyConnection, dataset: Dataset, objects: Sequence[LakeObject], name: str
        ) -> dict[str, int]:
            toxi.add_toxic("s3", "stall", "timeout", {"timeout": 0})
            return super().open(conn, dataset, objects, name)

    db = tmp_path / "wh.duckdb"
    with DuckDBTarget(db, lake) as target:
        target.reader = StallingReader(lake, spool_dir(db), fetch=fetch)
        started = time.monotonic()
        with pytest.raises(LoadError):
            BronzeLoader(lake, target).run()
        waited = time.monotonic() - started
        # Two attempts of at most 2 s each (plus the retry's backoff), not a hang.
        assert waited < 15, waited
        assert target.conn.execute("SELECT count(*) FROM bronze.load_ledger").fetchone() == (0,)
        toxi.remove_toxic("s3", "stall")
        target.reader = S3SpoolReader(lake, spool_dir(db), fetch=fetch)
        assert BronzeLoader(lake, target).run().loaded_objects == minio_lake.objects
        assert bronze_counts(target) == minio_lake.rows
    assert list(spool_dir(db).iterdir()) == []


def test_a_spool_left_by_a_process_that_died_mid_batch_is_removed(s3_lake: LakeSettings, tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    left = spool_dir(db) / "4242-0badf00d-_batch_quotes-x1y2" / "raw" / "quotes" / "dt=2025-01-10"
    left.mkdir(parents=True)
    (left / "quotes+0+00000000000000000000+00000000000000000009.parquet").write_bytes(b"half of an object")
    with DuckDBTarget(db, Lake(s3_lake)):
        assert list(spool_dir(db).iterdir()) == []


class CountingProxy:
    """A loopback HTTP proxy in front of MinIO counting the S3 requests that pass (both s3fs's and Arrow's).

    Requests are forwarded with their own Host header, so their signatures still hold.
    """

    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        self.requests: Counter[str] = Counter()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                query = urlsplit(self.path).query
                kind = "list" if "list-type=2" in query else self.command.lower()
                proxy.requests[kind] += 1
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                try:
                    conn.request(self.command, self.path, body, dict(self.headers.items()))
                    answer = conn.getresponse()
                    data = answer.read()
                finally:
                    conn.close()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                head = self.command == "HEAD"
                self.send_header("Content-Length", answer.getheader("Content-Length", "0") if head else str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> CountingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _quote_bytes(day: date, partition: int, first: int, rows: int) -> bytes:
    table = pa.table(
        {
            "symbol": ["AAPL"] * rows,
            "quote_ts": [datetime(day.year, day.month, day.day, 15, tzinfo=UTC) + timedelta(seconds=first + i)
                         for i in range(rows)],
            "fetched_at": [datetime(day.year, day.month, day.day, 15, tzinfo=UTC)] * rows,
            "source": ["synthetic"] * rows, "price": [10.0] * rows, "change": [0.0] * rows,
            "change_pct": [0.0] * rows, "day_high": [11.0] * rows, "day_low": [9.0] * rows,
            "day_open": [10.0] * rows, "prev_close": [10.0] * rows,
            "kafka_partition": pa.array([partition] * rows, pa.int32()),
            "kafka_offset": pa.array(range(first, first + rows), pa.int64()),
        },
        schema=QUOTE_V1.lake_schema(),
    )  # fmt: skip
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _new_objects(lake: Lake, newest: date) -> dict[str, bytes]:
    """What arrives after the history: a new day's quote files, late files in the newest day, a job's bars."""
    objects = {}
    for partition in range(3):
        for n in range(2):
            obj = StreamObject("quotes", newest + timedelta(days=1), "quotes", partition, 1000 * n, 1000 * n + 9)
            objects[obj.key] = _quote_bytes(obj.dt, partition, obj.first_offset, 10)
    late = StreamObject("quotes", newest, "quotes", 2, 5_000_000, 5_000_009)  # after the loaded ones of its day
    objects[late.key] = _quote_bytes(newest, 2, late.first_offset, 10)
    bars = [HistoryBar(s, d, 10.0, 11.0, 9.0, 10.5, 100.0) for s in ("AAPL", "MSFT") for d in (date(2025, 1, 2),)]
    job = BatchObject(DAILY_BARS, "daily", date(2025, 1, 2), date(2025, 1, 2), 0)
    objects[job.key] = lakeio.encode(lakeio.bars_table(bars, "synthetic"))
    for key, data in objects.items():
        lake.write_atomic(key, data)
    return objects


def test_a_load_after_10000_loaded_objects_lists_and_reads_no_more_than_on_an_empty_lake(
    s3_lake: LakeSettings, tmp_path: Path
) -> None:
    history_lake = Lake(s3_lake.model_copy(update={"url": f"{s3_lake.url}/history"}))
    empty_lake = Lake(s3_lake.model_copy(update={"url": f"{s3_lake.url}/empty"}))
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(100)]
    history = {
        history_lake.path(StreamObject("quotes", day, "quotes", p % 3, 1000 * p, 1000 * p + 9).key): _quote_bytes(
            day, p % 3, 1000 * p, 10
        )
        for day in days
        for p in range(100)
    }
    history_lake.fs.pipe(history)  # 10,000 objects, concurrent PUTs
    with DuckDBTarget(tmp_path / "history.duckdb", history_lake) as target:
        # The history is loaded: the ledger holds every object as listed (a load of 10,000 objects would
        # only take time here; what is measured is the next load).
        target.ensure_schema()
        listed = list(history_lake.walk("raw"))
        assert len(listed) == 10_000
        ledger = pa.table(
            {
                "object_key": [o.key for o in listed],
                "object_dir": [o.key.rsplit("/", 1)[0] for o in listed],
                "dataset": ["quotes"] * len(listed),
                "size": pa.array([o.size for o in listed], pa.int64()),
                "etag": [o.etag for o in listed],
                "row_count": pa.array([10] * len(listed), pa.int64()),
            }
        )
        target.conn.register("history", ledger)
        target.conn.execute(
            "INSERT INTO bronze.load_ledger SELECT *, 'history' AS load_id, get_current_timestamp() FROM history"
        )
    new = _new_objects(history_lake, days[-1])
    assert _new_objects(empty_lake, days[-1]) == new

    def load(lake: Lake, db: Path) -> tuple[Counter[str], dict[str, int]]:
        with CountingProxy(str(s3_lake.s3_endpoint_url)) as proxy:
            counted = Lake(lake.settings.model_copy(update={"s3_endpoint_url": proxy.url}))
            with DuckDBTarget(db, counted) as target:
                report = BronzeLoader(counted, target).run()
            assert report.loaded_objects == len(new)
            return proxy.requests, report.rows

    with_history, history_rows = load(history_lake, tmp_path / "history.duckdb")
    on_empty, empty_rows = load(empty_lake, tmp_path / "empty.duckdb")
    assert history_rows == empty_rows == {"quotes": 70, "daily_bars": 2}
    assert with_history["list"] <= on_empty["list"]
    assert with_history["get"] + with_history["head"] <= on_empty["get"] + on_empty["head"]
    assert sum(with_history.values()) <= sum(on_empty.values()), (with_history, on_empty)
