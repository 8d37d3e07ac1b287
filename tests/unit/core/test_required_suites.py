"""In CI a suite whose start-up fails is a failure, not a skip (tests/required_suites.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

BROKEN_START_UP = """
import pytest

@pytest.fixture(scope="module")
def engine():
    try:
        raise RuntimeError("the engine's start-up is broken")
    except RuntimeError as exc:
        pytest.skip(f"no engine could be started here: {exc}")

def test_uses_the_engine(engine):
    pass

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    raise AssertionError

def test_plain():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the plugin is tests.required_suites
    pytester.makepyfile(test_suite=BROKEN_START_UP)
    return pytester


def _run(suite: pytest.Pytester) -> pytest.RunResult:
    return suite.runpytest_subprocess("-p", "tests.required_suites", "-p", "no:cacheprovider")


def test_in_ci_a_broken_start_up_is_a_failure(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKPIPE_REQUIRE_SUITES", "1")
    monkeypatch.delenv("STOCKPIPE_ALLOWED_SKIPS", raising=False)
    result = _run(suite)
    result.assert_outcomes(passed=1, errors=1, xfailed=1)
    result.stdout.fnmatch_lines(["*a required suite skipped*the engine's start-up is broken*"])
    assert result.ret != 0


def test_an_allowed_reason_stays_a_skip(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKPIPE_REQUIRE_SUITES", "1")
    monkeypatch.setenv("STOCKPIPE_ALLOWED_SKIPS", "no engine could be started")
    _run(suite).assert_outcomes(passed=1, skipped=1, xfailed=1)


def test_outside_ci_a_missing_tool_is_a_skip(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STOCKPIPE_REQUIRE_SUITES", raising=False)
    _run(suite).assert_outcomes(passed=1, skipped=1, xfailed=1)
