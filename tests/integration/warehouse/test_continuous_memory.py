"""The continuous loader's memory stays bounded when a cycle makes millions of gold rows visible at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb

ROWS = 5_000_000
LIMIT_MIB = 512  # the bound for the loader's whole process (the pod's limit is 2 GiB)

# One cycle's measurement in a process of its own, as the workload runs: its peak RSS is the kernel's VmHWM
# of this process's memory. Not getrusage's ru_maxrss: Linux carries the parent's peak over fork and exec,
# so under a pytest worker it reports the worker's size (965 MiB once), not the loader's.
MEASURE = """
import json, re, sys
from datetime import UTC, datetime
from pathlib import Path
from stockpipe.settings import KafkaSettings, LakeSettings
from stockpipe.warehouse import continuous
from stockpipe.warehouse.settings import WarehouseTargetSettings

def peak_mib():
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024

settings = continuous.ContinuousLoaderSettings(
    kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),  # never contacted: no notice is read
    lake=LakeSettings(url="file://" + sys.argv[2]),
    warehouse=WarehouseTargetSettings(duckdb_path=Path(sys.argv[1])),
    metrics_port=0,
)
loader = continuous.ContinuousLoader(settings)
loader.gold_high_water = {fact: continuous._EPOCH for fact in continuous.GOLD_FACTS}
with continuous.gold_reader(settings) as query:
    query("SELECT count(*) FROM {gold}.fct_trades", [])
before = peak_mib()
loader.measure(datetime(2025, 1, 10, 21, tzinfo=UTC))
count = sum(b.get() for b in continuous.FETCHED_TO_GOLD._buckets)
print(json.dumps({
    "peak_rss_mib": peak_mib(),
    "peak_before_mib": before,
    "observed": count,
    "high_water": str(loader.gold_high_water["fct_quotes"]),
    "newest_fetched": loader.newest_fetched.isoformat() if loader.newest_fetched else None,
}))
"""


def test_a_cycle_with_5_million_new_gold_rows_stays_under_512_mib(tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    with duckdb.connect(str(db)) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("CREATE SCHEMA gold")
        # What the build just made visible: a session's quotes, fetched a few seconds after their time.
        conn.execute(
            """
            CREATE TABLE gold.fct_quotes AS
            SELECT
                'S' || (i % 5000)::VARCHAR AS symbol,
                TIMESTAMPTZ '2025-01-10 14:30:00+00' + to_microseconds(i * 4680) AS quote_ts,
                DATE '2025-01-10' AS session_date,
                TIMESTAMPTZ '2025-01-10 14:30:02+00' + to_microseconds(i * 4680) AS fetched_at,
                TIMESTAMPTZ '2025-01-10 20:59:00+00' + to_microseconds(i % 1000) AS loaded_at
            FROM range(?) AS r(i)
            """,
            [ROWS],
        )
        conn.execute(
            "CREATE TABLE gold.fct_trades (symbol VARCHAR, trade_ts TIMESTAMPTZ, session_date DATE, "
            "fetched_at TIMESTAMPTZ, loaded_at TIMESTAMPTZ)"
        )
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(db), str(tmp_path / "lake")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    print(measured)
    assert measured["observed"] == ROWS  # every new row is in the histogram
    assert measured["newest_fetched"] is not None
    assert measured["peak_rss_mib"] < LIMIT_MIB, measured
