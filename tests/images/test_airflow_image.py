"""The `stockpipe-airflow` image parses every DAG of dags/ with no import error, as its own user."""

from __future__ import annotations

import json
from pathlib import Path

from tests.images.conftest import Images

DAGS = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "dags").glob("*.py"))
PARSE = """
import json, os
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder="/opt/airflow/dags")
files = sorted({os.path.splitext(os.path.basename(dag.fileloc))[0] for dag in bag.dags.values()})
errors = {path: str(error)[-800:] for path, error in bag.import_errors.items()}
print(json.dumps({"dags": sorted(bag.dag_ids), "files": files, "errors": errors}))
"""


def test_every_dag_parses_in_the_airflow_image(images: Images) -> None:
    result = images.run(
        "airflow",
        ["-c", PARSE],
        entrypoint="/opt/venv/bin/python",
        # Airflow's home (config, logs, the SQLite metadata DB) on the writable tmpfs; the DAGs stay baked in.
        env={
            "AIRFLOW_HOME": "/tmp/airflow",
            "AIRFLOW__CORE__DAGS_FOLDER": "/opt/airflow/dags",
            # The first file pays for importing Airflow itself; this machine's 2 cores are shared.
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        },
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    assert parsed["files"] == DAGS, parsed  # every file of dags/ defines at least one DAG
    assert parsed["dags"], parsed
