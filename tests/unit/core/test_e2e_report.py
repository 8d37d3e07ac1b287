"""`make e2e` writes what ran, how it ended and how long it took (tests/e2e_report.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

SUITE = """
import time
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("start-up broke")

def test_passes():
    time.sleep(0.2)

def test_fails():
    assert 1 == 2

def test_errors(broken):
    pass

def test_skips():
    pytest.skip("no node here")
"""


def test_the_report_holds_each_outcome_and_duration(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the plugin is tests.e2e_report
    pytester.makepyfile(test_e2e=SUITE)
    out = pytester.path / ".bench" / "e2e.json"
    result = pytester.runpytest_subprocess("-p", "tests.e2e_report", "-p", "no:cacheprovider", f"--e2e-report={out}")
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=1)
    report = json.loads(out.read_text())
    assert (report["passed"], report["failed"], report["error"], report["skipped"]) == (1, 1, 1, 1)
    assert report["exit_status"] == 1
    tests = report["tests"]
    assert tests["test_e2e::test_passes"]["outcome"] == "passed"
    assert tests["test_e2e::test_passes"]["duration_s"] >= 0.2
    assert tests["test_e2e::test_fails"]["outcome"] == "failed"
    assert tests["test_e2e::test_errors"]["outcome"] == "error"
    skipped = tests["test_e2e::test_skips"]
    assert (skipped["outcome"], skipped["reason"]) == ("skipped", "Skipped: no node here")


CHECKS = """
import pytest

@pytest.mark.e2e_check("sync_reaches_pod")
def test_proves_a_check(record_property):
    record_property("detail", "median 2.5 s over 5 saves")
    record_property("cluster.sync_s", 2.5)
    record_property("cluster.page_p95_s.kafdrop", 0.25)

@pytest.mark.e2e_check("rebuild_rolls_out")
def test_fails_its_check():
    assert False, "no rollout"
"""


def test_named_checks_and_cluster_measurements(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_e2e=CHECKS)
    out = pytester.path / ".bench" / "e2e.json"
    (pytester.path / ".bench").mkdir()
    known = {"node_up_s": 40.0, "sync_s": 9.0, "page_p95_s": {"dashboard": 0.5}}
    (pytester.path / ".bench" / "cluster.json").write_text(json.dumps(known))
    result = pytester.runpytest_subprocess("-p", "tests.e2e_report", "-p", "no:cacheprovider", f"--e2e-report={out}")
    result.assert_outcomes(passed=1, failed=1)
    checks = json.loads(out.read_text())["checks"]
    assert checks["sync_reaches_pod"]["passed"] is True
    assert checks["sync_reaches_pod"]["detail"] == "median 2.5 s over 5 saves"
    assert checks["sync_reaches_pod"]["seconds"] >= 0
    assert (checks["rebuild_rolls_out"]["passed"], checks["rebuild_rolls_out"]["detail"]) == (False, "failed")
    # Measurements join what the cluster bench wrote; the rest of that file stays.
    written = json.loads((pytester.path / ".bench" / "cluster.json").read_text())
    assert written == {"node_up_s": 40.0, "sync_s": 2.5, "page_p95_s": {"dashboard": 0.5, "kafdrop": 0.25}}


def test_without_the_option_nothing_is_written(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_e2e="def test_passes():\n    pass\n")
    pytester.runpytest_subprocess("-p", "tests.e2e_report", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert not (pytester.path / ".bench").exists()
