"""dbt's console log stays out of a workload's output: one structured line per build, the full log in a file.

Each build runs in a process of its own, as in a workload: its stdout and stderr are then only what the
build printed (a test worker's stderr also carries the leftovers of earlier tests' threads and clients).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]

# The workload's side: builds, then the dbt runner's log records written to a file (never to the console).
BUILDS = """
import json, logging, sys
from pathlib import Path
from stockpipe.settings import LakeSettings
from stockpipe.warehouse.dbt_runner import run_dbt
from stockpipe.warehouse.settings import WarehouseSettings, WarehouseTargetSettings

work, repo, times, *select = sys.argv[1:]
records = []

class Keep(logging.Handler):
    def emit(self, record):
        records.append({"level": record.levelno, "message": record.getMessage(), "dbt": getattr(record, "dbt", None)})

logger = logging.getLogger("stockpipe.warehouse.dbt_runner")
logger.addHandler(Keep())
logger.setLevel(logging.DEBUG)
logger.propagate = False  # no lastResort handler printing warnings to stderr
settings = WarehouseSettings(
    lake=LakeSettings(url="file://" + work + "/lake"),
    warehouse=WarehouseTargetSettings(
        duckdb_path=Path(work) / "wh" / "stockpipe.duckdb", dbt_project_dir=Path(repo) / "dbt"
    ),
)
results = [run_dbt(["build", "--select", *select], settings).success for _ in range(int(times))]
(Path(work) / "records.json").write_text(json.dumps({"results": results, "records": records}, default=str))
"""


def _builds(work: Path, times: int, *select: str) -> tuple[str, str, dict[str, Any]]:
    """(stdout, stderr, {results, records}) of `times` builds of the selection in a process of their own."""
    env = {**os.environ, "DBT_TARGET_PATH": str(work / "dbt-target"), "DBT_LOG_PATH": str(work / "dbt-logs")}
    argv = [sys.executable, "-c", BUILDS, str(work), str(REPO), str(times), *select]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, done.stderr, json.loads((work / "records.json").read_text())


def test_a_build_logs_one_line_and_no_dbt_console(tmp_path: Path) -> None:
    out, err, built = _builds(tmp_path, 2, "nyse_sessions")
    assert built["results"] == [True, True]
    assert out == ""  # dbt printed nothing itself
    assert err == ""
    records = built["records"]
    assert len(records) == 2  # one per build
    summary = records[0]["dbt"]
    assert (summary["seeds"], summary["failures"], summary["success"]) == (1, 0, True)
    assert summary["seconds"] > 0
    log_file = tmp_path / "dbt-logs" / "dbt.log"
    assert "nyse_sessions" in log_file.read_text()
    assert "\x1b[" not in log_file.read_text()


def test_a_failed_build_logs_dbt_output_whole_without_colours(tmp_path: Path) -> None:
    # No bronze in this warehouse: the silver model cannot build.
    out, err, built = _builds(tmp_path, 1, "slv_quotes")
    assert built["results"] == [False]
    assert out == ""
    assert err == ""
    (record,) = built["records"]
    assert record["level"] == logging.ERROR
    text = record["message"]
    assert "slv_quotes" in text
    assert len(text.splitlines()) > 3
    assert "\x1b[" not in text
    assert record["dbt"]["failures"] >= 1
