"""Required suites: in CI a skipped test is a failure, unless its reason is on the allow-list.

A suite's fixture skips when its tool is missing on a developer's machine (no Docker engine, no
chromium, not root). In CI every tool is there, so such a skip can only hide a broken start-up of the
project's own code. `.ci/run` sets STOCKPIPE_REQUIRE_SUITES=1; STOCKPIPE_ALLOWED_SKIPS is a regular
expression of skip reasons still allowed there (none by default).
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator

import pytest

REQUIRE = "STOCKPIPE_REQUIRE_SUITES"
ALLOWED = "STOCKPIPE_ALLOWED_SKIPS"


def _skip_reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    return str(report.longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.skipped or os.environ.get(REQUIRE, "") not in {"1", "true", "yes"}:
        return
    if hasattr(report, "wasxfail"):
        return  # an expected failure is not a missing suite
    reason = _skip_reason(report)
    allowed = os.environ.get(ALLOWED, "")
    if allowed and re.search(allowed, reason):
        return
    report.outcome = "failed"
    report.longrepr = f"a required suite skipped ({REQUIRE}=1): {reason}"
