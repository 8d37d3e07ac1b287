from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from stockpipe_dev.localservices.health import check_object_store
from stockpipe_dev.localservices.minio import MinioServer


def test_object_written_and_read_with_s3fs(minio_server: MinioServer) -> None:
    fs = minio_server.filesystem()
    path = f"{minio_server.bucket}/tests/hello.parquet"
    table = pa.table({"symbol": ["AAPL", "MSFT"], "price": [190.5, 410.25]})
    with fs.open(path, "wb") as out:  # type: ignore[attr-defined]
        pq.write_table(table, out)
    assert fs.exists(path)  # type: ignore[attr-defined]
    with fs.open(path, "rb") as back:  # type: ignore[attr-defined]
        assert pq.read_table(back).equals(table)
    fs.rm(path)  # type: ignore[attr-defined]


def test_bucket_exists_and_health_check(minio_server: MinioServer) -> None:
    fs = minio_server.filesystem()
    assert fs.exists(minio_server.bucket)  # type: ignore[attr-defined]
    assert "read back" in check_object_store(fs, minio_server.bucket)
