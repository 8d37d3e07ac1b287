"""The `stockpipe-jobs` image: `dbt parse` of the baked-in project, and a bronze load from MinIO."""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from stockpipe.contracts.bars import daily_bars_table
from stockpipe.lake.layout import daily_bar_key
from stockpipe.lake.store import Lake
from stockpipe.settings import LakeSettings
from tests.images.conftest import Images

UID = 10001


def writable_dir(path: Path) -> Path:
    """A host folder the image's user may write (it is not root and owns nothing on the host)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, UID, UID)
    return path


def test_dbt_parses_the_project_in_the_image(images: Images, tmp_path: Path) -> None:
    data = writable_dir(tmp_path / "data")
    result = images.run(
        "stockpipe-jobs",
        ["parse", "--project-dir", "/app/dbt", "--profiles-dir", "/app/dbt", "--target", "duckdb"],
        entrypoint="dbt",
        env={"STOCKPIPE_WAREHOUSE__DUCKDB_PATH": "/data/wh.duckdb"},
        volumes=[f"{data}:/data"],
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    # The manifest went to the writable target path, not into the read-only project.
    listing = images.run(
        "stockpipe-jobs", ["-c", "import os; print(os.listdir('/app/dbt'))"], entrypoint="/opt/venv/bin/python"
    )
    assert "target" not in listing.stdout


def _bar_bytes(symbol: str, day: date, close: float) -> bytes:
    table = daily_bars_table(
        {"symbol": [symbol], "date": [day], "open": [close], "high": [close], "low": [close], "close": [close],
         "volume": [100], "source": ["synthetic"], "fetched_at": [datetime(2025, 1, 1, tzinfo=UTC)]}
    )  # fmt: skip
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def test_bronze_load_from_minio_in_the_image(images: Images, s3_lake: LakeSettings, tmp_path: Path) -> None:
    lake = Lake(s3_lake)
    days = [date(2025, 3, 3) + timedelta(days=i) for i in range(4)]
    symbols = ["AAPL", "MSFT", "NVDA"]
    for day in days:
        for symbol in symbols:
            lake.write_atomic(daily_bar_key(day, symbol), _bar_bytes(symbol, day, 100.0))
    data = writable_dir(tmp_path / "warehouse")
    assert s3_lake.s3_endpoint_url
    assert s3_lake.access_key
    assert s3_lake.secret_key
    result = images.run(
        "stockpipe-jobs",
        ["load", "bronze", "--target", "duckdb"],
        env={
            "STOCKPIPE_LAKE__URL": s3_lake.url,
            "STOCKPIPE_LAKE__S3_ENDPOINT_URL": s3_lake.s3_endpoint_url,
            "STOCKPIPE_WAREHOUSE__DUCKDB_PATH": "/warehouse/stockpipe.duckdb",
        },
        secret_env={
            "STOCKPIPE_LAKE__ACCESS_KEY": s3_lake.access_key.get_secret_value(),
            "STOCKPIPE_LAKE__SECRET_KEY": s3_lake.secret_key.get_secret_value(),
        },
        volumes=[f"{data}:/warehouse"],
        network="host",
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["loaded_objects"] == len(days) * len(symbols)
    with duckdb.connect(str(data / "stockpipe.duckdb"), read_only=True) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT symbol) FROM bronze.daily_bars").fetchone()
    assert row == (len(days) * len(symbols), len(symbols))
