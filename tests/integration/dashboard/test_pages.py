"""Every dashboard page in Debian's Chromium, against a warehouse the pipeline built from a synthetic session."""

# Queries name tables and columns defined in the code.

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import duckdb
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from .conftest import SCREENSHOTS, BuiltWarehouse, Dashboard

PAGES = {"market": "", "symbol": "symbol", "intraday": "intraday", "health": "health"}
# Opening a page's URL directly, Streamlit's client first probes <page>/_stcore/{health,host-config} to
# find its base path and gets a 404 before it tries the root: that is the only error we let through.
BASE_PATH_PROBE = re.compile(r"/[a-z]+/_stcore/(health|host-config)$")


class Page:
    """A browser tab on the dashboard that records every error the page or the browser reports."""

    def __init__(self, browser: Any, dashboard: Dashboard) -> None:
        self.base = dashboard.url
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self.page.on("response", self._response)
        self.page.on("console", self._console)
        self._probes = 0
        self.network_changed = 0

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            if response.status == 404 and BASE_PATH_PROBE.search(response.url):
                self._probes += 1
            else:
                self.errors.append(f"HTTP {response.status} {response.url}")

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        if "net::ERR_NETWORK_CHANGED" in message.text:
            # The host's interfaces changed (other tests on this machine make bridges and namespaces):
            # Chromium aborts requests in flight. A fact of the machine, not of the page: open() retries.
            self.network_changed += 1
            return
        probe_line = message.text.startswith("Failed to load resource: the server responded with a status of 404")
        if probe_line and self._probes > 0:  # the probe's own console line
            self._probes -= 1
            return
        self.errors.append(f"console: {message.text}")

    def open(self, path: str) -> None:
        for attempt in range(3):
            seen = self.network_changed
            self.page.goto(f"{self.base}/{path}")
            try:
                self.settle()
                return
            except PlaywrightTimeout:
                if self.network_changed == seen or attempt == 2:
                    raise

    def settle(self) -> None:
        """Wait until the script run is over and its charts are drawn; then no exception may be on the page."""
        # Every page writes its as-of caption first: then the run is surely under way (or done).
        self.page.get_by_text("Data as of:").first.wait_for(timeout=120_000)
        self.page.wait_for_function(
            "() => ['notRunning'].includes(document.querySelector('[data-testid=stApp]')"
            "?.getAttribute('data-test-script-state'))",
            timeout=120_000,
        )
        # Elements whose code the client loads lazily show skeletons first; charts draw after that.
        self.page.wait_for_function(
            "() => !document.querySelector('[data-testid^=stSkeleton], [data-testid=stAppSkeleton]')"
            " && [...document.querySelectorAll('[data-testid=stPlotlyChart]')]"
            ".every(c => c.querySelector('.js-plotly-plot .main-svg'))",
            timeout=60_000,
        )
        exceptions = self.page.locator('[data-testid="stException"]').all_inner_texts()
        assert exceptions == [], exceptions
        assert self.page.locator('[data-testid="stAlertContentError"]').count() == 0

    def metrics(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for metric in self.page.locator('[data-testid="stMetric"]').all():
            label = metric.locator('[data-testid="stMetricLabel"]').inner_text().strip()
            values[label] = metric.locator('[data-testid="stMetricValue"]').inner_text().strip()
        return values

    def chart(self, index: int = 0) -> list[dict[str, Any]]:
        """The traces (x and y) a Plotly chart draws, read from the chart's own element."""
        traces: list[dict[str, Any]] = (
            self.page.locator(".js-plotly-plot")
            .nth(index)
            .evaluate(
                "el => el._fullData.map(t => ({type: t.type, name: t.name, x: Array.from(t.x || []), "
                "y: Array.from(t.y || t.close || [])}))"
            )
        )
        return traces

    def close(self) -> None:
        self.page.close()


@pytest.fixture
def tab(browser: Any, dashboard: Dashboard) -> Iterator[Page]:
    page = Page(browser, dashboard)
    yield page
    page.close()
    assert page.errors == [], page.errors


def marts(built: BuiltWarehouse, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(built.path), read_only=True) as conn:
        return conn.execute(sql, list(params)).fetchall()


def newest_session(built: BuiltWarehouse) -> date:
    ((day,),) = marts(built, "select max(session_date) from gold.mart_symbol_daily")
    assert isinstance(day, date)
    return day


def test_every_page_opens_without_an_error_and_is_screenshotted(tab: Page, built_warehouse: BuiltWarehouse) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    newest = newest_session(built_warehouse)
    for name, path in PAGES.items():
        tab.open(path)
        caption = tab.page.get_by_text("Data as of:").first.inner_text()
        assert f"newest session {newest}" in caption, caption
        assert tab.page.locator(".js-plotly-plot").count() >= 1, name
        tab.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000


def test_the_symbol_page_shows_the_marts_values(tab: Page, built_warehouse: BuiltWarehouse) -> None:
    for symbol in ("MSFT", "BRK.B"):
        tab.open(f"symbol?symbol={symbol}")
        ((close, daily, ma_30, vol, day),) = marts(
            built_warehouse,
            "select close_price, daily_return, ma_30, volatility_30, session_date from gold.mart_symbol_daily "
            "where symbol = ? order by session_date desc limit 1",
            symbol,
        )
        shown = tab.metrics()
        assert shown["Close"] == f"{close:,.2f}"
        assert shown["Daily return"] == f"{daily * 100:+.4f}%"
        assert shown["MA 30"] == f"{ma_30:,.4f}"
        assert shown["30-day volatility"] == f"{vol * 100:.4f}%"
        assert tab.page.get_by_text(f"{symbol} on {day}").count() == 1


def test_the_market_page_shows_the_marts_movers(tab: Page, built_warehouse: BuiltWarehouse) -> None:
    tab.open("")
    latest = dict(
        marts(
            built_warehouse,
            "select symbol, daily_return from gold.mart_symbol_daily where session_date = ?",
            newest_session(built_warehouse),
        )
    )
    best = max(latest, key=lambda s: latest[s])
    worst = min(latest, key=lambda s: latest[s])
    tables = tab.page.locator('[data-testid="stTable"]').all_inner_texts()
    assert any(best in t and f"{latest[best] * 100:+.4f}%" in t for t in tables), tables
    assert any(worst in t and f"{latest[worst] * 100:+.4f}%" in t for t in tables), tables


def test_changing_the_symbol_and_the_date_range_changes_the_charts(tab: Page) -> None:
    tab.open("symbol?symbol=AAPL&start=2024-07-01&end=2025-01-10")
    before = tab.chart()
    assert before[0]["type"] == "candlestick"
    assert before[0]["name"] == "AAPL"
    assert before[0]["x"][0] >= "2024-07-01"
    assert before[0]["x"][-1] == "2025-01-10"

    # Another symbol, picked the way a user does: open the box, type, Enter.
    tab.page.locator('[data-testid="stSelectbox"]').first.click()
    tab.page.keyboard.type("NVDA")
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_function(
        "() => document.querySelector('.js-plotly-plot')?.data?.[0]?.name === 'NVDA'", timeout=60_000
    )
    tab.settle()
    after = tab.chart()
    assert after[0]["name"] == "NVDA"
    assert after[0]["y"] != before[0]["y"]
    assert "symbol=NVDA" in tab.page.url

    # Another range: the chart covers exactly the sessions in it.
    tab.open("symbol?symbol=NVDA&start=2024-11-01&end=2024-12-31")
    ranged = tab.chart()
    xs = ranged[0]["x"]
    assert (xs[0], xs[-1]) == ("2024-11-01", "2024-12-31")
    assert len(xs) < len(after[0]["x"])
    assert tab.metrics()["Close"] != "—"


def test_the_intraday_page_shades_the_session_and_shows_its_range(tab: Page, built_warehouse: BuiltWarehouse) -> None:
    tab.open("intraday?symbol=MSFT")
    ((last_price, day_high, day_low, quotes),) = marts(
        built_warehouse,
        "select last_price, day_high, day_low, quote_count from gold.mart_intraday_range where symbol = 'MSFT' "
        "order by session_date desc limit 1",
    )
    shown = tab.metrics()
    assert shown["Last price"] == f"{last_price:,.2f}"
    assert shown["Day high"] == f"{day_high:,.2f}"
    assert shown["Day low"] == f"{day_low:,.2f}"
    assert shown["Quotes"] == f"{quotes:,}"
    assert tab.page.get_by_text("NYSE regular session: 09:30-16:00 New York").count() == 1
    shapes = tab.page.locator(".js-plotly-plot").first.evaluate("el => el.layout.shapes.map(s => s.type)")
    assert "rect" in shapes
    names = {t["name"] for t in tab.chart()}
    assert {"quotes", "trades"} <= names


def test_the_health_page_shows_the_dead_letter_this_run_caused(tab: Page, built_warehouse: BuiltWarehouse) -> None:
    tab.open("health")
    ((detected, count),) = marts(
        built_warehouse,
        "select detected_date, dead_letters from gold.fct_dead_letters_daily where source_topic = ?",
        built_warehouse.kafka.topic_quotes,
    )
    rows = tab.page.locator('[data-testid="stTable"] tr').all_inner_texts()
    ours = [r for r in rows if built_warehouse.kafka.topic_quotes in r]
    assert len(ours) == 1, rows
    assert str(detected) in ours[0]
    assert "empty_message" in ours[0]
    assert str(count) in ours[0]
    # The stream is up: the consumer group's lag and the consumer's heartbeat are shown, not a note.
    assert tab.page.get_by_text("is not reachable").count() == 0
    assert tab.page.get_by_text("lag per partition").count() == 1
    assert tab.page.get_by_text("History gaps", exact=True).count() == 1
