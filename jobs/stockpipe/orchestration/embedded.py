"""Run a DAG on one machine, no scheduler: `run_dag("daily_history", logical_date, conf)`.

Each call runs `dag.test()` in a child process (Airflow reads its configuration once, at import,
so the caller's process is never configured for Airflow) against a SQLite metadata database kept
in `STOCKPIPE_AIRFLOW__HOME` (default: <state dir>/airflow), created on first use. Tasks run in
embedded mode: each job is a local `stockpipe ...` process that inherits the caller's environment
(STOCKPIPE_LAKE__URL, STOCKPIPE_KAFKA__BOOTSTRAP_SERVERS, ...). With mode="kubernetes" each job is a
KubernetesPodOperator pod instead, launched with STOCKPIPE_AIRFLOW__KUBECONFIG (a scheduler outside
the cluster).

    python -m stockpipe.orchestration.embedded daily_history --logical-date 2026-03-02T23:30:00Z
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stockpipe.orchestration.settings import JobMode, airflow_settings
from stockpipe.paths import state_dir

log = logging.getLogger("stockpipe.orchestration.embedded")

RESULT_PREFIX = "stockpipe-dag-run: "


class DagRunFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class DagRunOutcome:
    dag_id: str
    run_id: str
    state: str
    tasks: dict[str, str] = field(default_factory=dict)  # task_id -> final state
    log_file: str | None = None  # Airflow's output for this run (run_dag only)

    @property
    def ok(self) -> bool:
        return self.state == "success"


def default_dags_folder() -> Path:
    configured = airflow_settings().dags_folder
    return configured or Path(__file__).resolve().parents[3] / "dags"  # the repository's dags/


def default_home() -> Path:
    return airflow_settings().home or state_dir() / "airflow"


def airflow_env(home: Path, dags_folder: Path, mode: JobMode = "embedded") -> dict[str, str]:
    """The Airflow configuration of a run on one machine: SQLite under `home`, the DAGs of `dags_folder`."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "STOCKPIPE_AIRFLOW__MODE": mode,
    }


def ensure_db() -> None:
    """Create (or migrate) the metadata database of the configured AIRFLOW_HOME; a no-op when current."""
    from airflow.utils.db import initdb

    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    initdb()


def dag_test_here(dag_id: str, logical_date: datetime, conf: Mapping[str, Any] | None = None) -> DagRunOutcome:
    """dag.test() in this process: Airflow must already be configured (see airflow_env) and its DB ready."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or str(default_dags_folder()))
    if bag.import_errors:
        raise DagRunFailed(f"DAG import errors: {bag.import_errors}")
    dag = bag.dags.get(dag_id)
    if dag is None:
        raise DagRunFailed(f"no DAG {dag_id!r} among {sorted(bag.dags)}")
    run = dag.test(logical_date=logical_date, run_conf=dict(conf or {}))
    tasks = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}
    return DagRunOutcome(dag_id, str(run.run_id), str(getattr(run.state, "value", run.state)), tasks)


def run_dag(
    dag_id: str,
    logical_date: datetime,
    conf: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
    dags_folder: Path | None = None,
    timeout_s: float | None = 3600,
    mode: JobMode = "embedded",
) -> DagRunOutcome:
    """Run one DAG run in a child process; raises DagRunFailed unless the run succeeded."""
    if logical_date.tzinfo is None:
        raise ValueError("logical_date must be timezone-aware")
    child_env = {
        **os.environ,
        **(env or {}),
        **airflow_env(home or default_home(), dags_folder or default_dags_folder(), mode),
    }
    argv = [
        sys.executable,
        "-m",
        "stockpipe.orchestration.embedded",
        dag_id,
        "--logical-date",
        logical_date.isoformat(),
    ]
    argv += ["--conf", json.dumps(dict(conf or {}))]
    # Airflow's own output (task logs included) goes to a file per run: a run is read there, not on a terminal.
    log_dir = Path(child_env["AIRFLOW_HOME"]) / "logs" / "embedded"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{dag_id}.{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.log"
    with log_file.open("w", encoding="utf-8") as out:
        proc = subprocess.run(argv, env=child_env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s, check=False)
    text = log_file.read_text(encoding="utf-8", errors="replace")
    results = [line for line in text.splitlines() if line.startswith(RESULT_PREFIX)]
    if not results:
        tail = "\n".join(text.splitlines()[-20:])
        raise DagRunFailed(f"{dag_id}: the DAG run did not finish (exit {proc.returncode}; log {log_file}):\n{tail}")
    reported = json.loads(results[-1].removeprefix(RESULT_PREFIX))
    outcome = DagRunOutcome(**{**reported, "log_file": str(log_file)})
    if not outcome.ok:
        raise DagRunFailed(f"{dag_id} {outcome.run_id}: {outcome.state}; tasks {outcome.tasks}; log {log_file}")
    log.info("%s %s: %s (log %s)", dag_id, outcome.run_id, outcome.state, log_file)
    return outcome


def main(args: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stockpipe.orchestration.embedded", description=__doc__)
    parser.add_argument("dag_id")
    parser.add_argument("--logical-date", default=None, help="ISO date-time with offset; default now")
    parser.add_argument("--conf", default="{}", help="the run's conf (params) as JSON")
    ns = parser.parse_args(args)
    when = datetime.fromisoformat(ns.logical_date.replace("Z", "+00:00")) if ns.logical_date else datetime.now(UTC)
    if when.tzinfo is None:
        parser.error("--logical-date needs an offset (e.g. Z)")
    if "AIRFLOW_HOME" not in os.environ:  # run by hand: the same defaults as run_dag()
        os.environ.update(airflow_env(default_home(), default_dags_folder()))
    ensure_db()
    outcome = dag_test_here(ns.dag_id, when, json.loads(ns.conf))
    print(RESULT_PREFIX + json.dumps(outcome.__dict__), flush=True)
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
