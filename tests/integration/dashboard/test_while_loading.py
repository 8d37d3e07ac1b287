"""A bronze load and `dbt build` finish while a browser keeps the dashboard reading the same warehouse."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from typing import Any

from stockpipe.marketdata import calendar
from tests.integration.warehouse.conftest import SESSION

from .conftest import BuiltWarehouse, Dashboard
from .test_pages import Page


def browse_until_done(tab: Page, proc: subprocess.Popen[str], paths: list[str]) -> int:
    """Reload pages (each reload reads the warehouse) until the process exits; returns the page loads."""
    loads = 0
    while proc.poll() is None or loads == 0:
        tab.open(paths[loads % len(paths)])
        loads += 1
    return loads


def test_a_load_and_a_dbt_build_finish_while_the_dashboard_is_open(
    browser: Any, dashboard: Dashboard, built_warehouse: BuiltWarehouse
) -> None:
    next_day = calendar.sessions_between(SESSION + timedelta(days=1), SESSION + timedelta(days=7))[0]
    built_warehouse.lake.add_session(next_day)
    tab = Page(browser, dashboard)
    try:
        tab.open("symbol?symbol=AAPL")
        for args in (("load", "bronze"), ("load", "dbt-build")):
            proc = built_warehouse.run(*args)
            loads = browse_until_done(tab, proc, ["health", "symbol?symbol=AAPL", ""])
            out, _ = proc.communicate(timeout=600)
            assert proc.returncode == 0, f"stockpipe {' '.join(args)} failed beside the dashboard:\n{out[-4000:]}"
            assert loads >= 1
        # Once the writers are done, the next page run reads a new snapshot: the new session is shown.
        tab.page.wait_for_timeout(500)
        tab.open("symbol?symbol=AAPL")
        assert tab.page.get_by_text(f"AAPL on {next_day}").count() == 1
        assert f"newest session {next_day}" in tab.page.get_by_text("Data as of:").first.inner_text()
    finally:
        tab.close()
    assert tab.errors == [], tab.errors
