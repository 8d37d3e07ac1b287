"""Jobs as child processes: output streamed, the JSON summary kept, the pod wrapper's XCom file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from stockpipe.orchestration import jobrun

JOB = [sys.executable, "-c"]
PRINTS_SUMMARY = (
    "import json, sys\n"
    "print('working', file=sys.stderr)\n"
    "print('a line of prose')\n"
    "print(json.dumps({'loaded_objects': 3, 'args': sys.argv[1:]}))\n"
)
FAILS = "import sys\nprint('error: the lake is down', file=sys.stderr)\nsys.exit(1)\n"


def test_run_job_streams_every_line_and_keeps_the_last_json_line() -> None:
    lines: list[tuple[str, str]] = []
    result = jobrun.run_job([*JOB, PRINTS_SUMMARY, "load", "bronze"], echo=lambda s, line: lines.append((s, line)))
    assert result.returncode == 0
    assert result.summary == {"loaded_objects": 3, "args": ["load", "bronze"]}
    assert ("stderr", "working") in lines
    assert ("stdout", "a line of prose") in lines


def test_a_failing_job_reports_its_one_line_reason() -> None:
    result = jobrun.run_job([*JOB, FAILS], echo=lambda *_: None)
    assert result.returncode == 1
    assert result.last_error == "the lake is down"
    assert result.summary is None


def test_prose_last_means_no_summary() -> None:
    assert jobrun.last_json_line(['{"a": 1}', "Completed successfully", ""]) is None
    assert jobrun.last_json_line(["x", '{"a": 1}', "  "]) == {"a": 1}


def test_the_pod_wrapper_writes_the_summary_where_the_xcom_sidecar_reads_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xcom = tmp_path / "airflow" / "xcom" / "return.json"
    assert jobrun.main([f"--xcom-file={xcom}", "--", *JOB, PRINTS_SUMMARY, "load", "bronze"]) == 0
    assert json.loads(xcom.read_text()) == {"loaded_objects": 3, "args": ["load", "bronze"]}
    assert "a line of prose" in capsys.readouterr().out  # the job's output still reaches the pod log


def test_the_pod_wrapper_passes_a_failure_on_and_writes_nothing(tmp_path: Path) -> None:
    xcom = tmp_path / "return.json"
    assert jobrun.main([f"--xcom-file={xcom}", "--", *JOB, FAILS]) == 1
    assert not xcom.exists()
    with pytest.raises(SystemExit):
        jobrun.main(["--xcom-file=x"])  # no job after --
