"""The Streamlit app behind `stockpipe dashboard`: Market, Symbol, Intraday and Pipeline health pages.

Run through `stockpipe dashboard` (which validates the settings first), not imported by other code.
Query results are cached for STOCKPIPE_DASHBOARD__CACHE_TTL_S; every widget value reaches SQL only
as a bound parameter of a fixed question (stockpipe.dashboard.queries).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from stockpipe.dashboard import queries, views
from stockpipe.dashboard.queries import Reader, Snapshot, WarehouseBusy, WarehouseMissing
from stockpipe.dashboard.settings import DashboardSettings
from stockpipe.paths import cache_dir
from stockpipe.settings import ConfigError, load_settings

st.set_page_config(page_title="stockpipe", page_icon="📈", layout="wide")


@st.cache_resource
def _settings() -> DashboardSettings:
    return load_settings(DashboardSettings)


try:
    SETTINGS = _settings()
except ConfigError as exc:
    st.error(f"stockpipe dashboard: {exc}")
    st.stop()
OPTIONS = SETTINGS.dashboard


@st.cache_resource
def _reader() -> Reader:
    wh = SETTINGS.warehouse
    if wh.target == "snowflake":
        return queries.SnowflakeReader(wh.snowflake, OPTIONS.snowflake_gold_schema)
    snapshot_dir = OPTIONS.snapshot_dir or cache_dir() / "dashboard"
    return queries.DuckDBSnapshotReader(
        wh.duckdb_path.resolve(),
        snapshot_dir,
        wait_s=OPTIONS.snapshot_wait_s,
        refresh_s=OPTIONS.snapshot_refresh_s,
        grace_s=OPTIONS.snapshot_grace_s,
    )


@st.cache_data(ttl=OPTIONS.cache_ttl_s, show_spinner=False, max_entries=512)
def _cached_frame(_reader: Reader, sql: str, params: tuple[tuple[str, Any], ...], generation: int) -> pd.DataFrame:
    return _reader.frame(sql, dict(params))


class CachedReader:
    """The shared reader with results cached per (question, parameters, snapshot) for the TTL."""

    def __init__(self, reader: Reader, snapshot: Snapshot) -> None:
        self.reader = reader
        self.snapshot = snapshot

    def refresh(self) -> Snapshot:
        return self.snapshot

    def frame(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        return _cached_frame(self.reader, sql, tuple(sorted((params or {}).items())), self.snapshot.generation).copy()

    def close(self) -> None:
        pass


def _open() -> CachedReader:
    """The page's reader, or a clear message (and the page stops) when the warehouse cannot be read yet."""
    reader = _reader()
    try:
        snapshot = reader.refresh()
    except WarehouseMissing as exc:
        st.warning(str(exc))
        st.stop()
    except WarehouseBusy as exc:
        st.info(str(exc))
        st.stop()
    return CachedReader(reader, snapshot)


def _as_of(reader: CachedReader) -> views.AsOf:
    as_of = views.AsOf.load(reader)
    st.caption(as_of.caption(reader.snapshot))
    return as_of


def _param_date(name: str, default: date) -> date:
    try:
        return date.fromisoformat(st.query_params[name])
    except (KeyError, ValueError):
        return default


def _symbol_choice(symbols: list[str], key: str) -> str:
    """A symbol picker that starts from ?symbol= and writes the choice back to the URL."""
    wanted = st.query_params.get("symbol", "")
    index = symbols.index(wanted) if wanted in symbols else 0
    symbol = st.selectbox("Symbol", symbols, index=index, key=key)
    st.query_params["symbol"] = symbol
    return str(symbol)


# -- pages ----------------------------------------------------------------------------------------------


def market_page() -> None:
    st.title("Market")
    reader = _open()
    _as_of(reader)
    view = views.market_view(reader, OPTIONS.heatmap_sessions, OPTIONS.heatmap_symbols, OPTIONS.movers)
    if view.latest.empty:
        st.info("No daily bars in the warehouse yet: run the history backfill, `stockpipe load bronze` and dbt.")
        return
    left, right = st.columns([3, 2])
    with left:
        st.subheader("Newest session per symbol")
        table = pd.DataFrame(
            {
                "symbol": view.latest["symbol"],
                "session": view.latest["session_date"].astype(str),
                "close": view.latest["close_price"].map(views.fmt_price),
                "daily return": view.latest["daily_return"].map(views.fmt_pct),
                "YTD return": view.latest["ytd_return"].map(views.fmt_pct),
                "30-day volatility": view.latest["volatility_30"].map(lambda v: views.fmt_pct(v, signed=False)),
            }
        )
        st.dataframe(table, hide_index=True, width="stretch", height=min(38 + 35 * len(table), 560), key="latest")
    with right:
        st.plotly_chart(view.movers, width="stretch", key="movers")
        gain, lose = st.columns(2)
        gain.markdown("**Top gainers**")
        gain.table(_movers_table(view.gainers))
        lose.markdown("**Top losers**")
        lose.table(_movers_table(view.losers))
    st.plotly_chart(view.heatmap, width="stretch", key="heatmap")


def _movers_table(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {"symbol": frame["symbol"], "daily return": frame["daily_return"].map(views.fmt_pct)}
    ).set_index("symbol")


def symbol_page() -> None:
    st.title("Symbol")
    reader = _open()
    as_of = _as_of(reader)
    listing = views._dates(queries.symbols(reader), "first_bar_date", "last_bar_date")
    listing = listing[listing["has_daily_bars"].astype(bool)]
    if listing.empty:
        st.info("No symbol has daily bars yet.")
        return
    pick, dates = st.columns([1, 2])
    with pick:
        symbol = _symbol_choice(listing["symbol"].tolist(), "symbol_symbol")
    row = listing[listing["symbol"] == symbol].iloc[0]
    first, last = row["first_bar_date"], row["last_bar_date"]
    start = max(first, min(_param_date("start", last - timedelta(days=365)), last))
    end = min(max(_param_date("end", last), start), last)
    with dates:
        chosen = st.date_input(
            "Date range",
            value=(start, end),
            min_value=first,
            max_value=last,
            key=f"range_{symbol}",
            format="YYYY-MM-DD",
        )
    if isinstance(chosen, tuple) and len(chosen) == 2:
        start, end = chosen
    st.query_params["start"], st.query_params["end"] = start.isoformat(), end.isoformat()
    view = views.symbol_view(reader, symbol, start, end)
    if view.history.empty:
        st.info(f"{symbol} has no bars between {start} and {end}.")
        return
    last_row = view.last
    st.markdown(
        f"**{symbol} on {last_row['session_date']}** (the range's newest session; newest overall {as_of.last_session})"
    )
    metrics = [
        ("Close", views.fmt_price(last_row["close_price"])),
        ("Adjusted close", views.fmt_level(last_row["adj_close"])),
        ("Daily return", views.fmt_pct(last_row["daily_return"])),
        ("MA 7", views.fmt_level(last_row["ma_7"])),
        ("MA 30", views.fmt_level(last_row["ma_30"])),
        ("MA 90", views.fmt_level(last_row["ma_90"])),
        ("30-day volatility", views.fmt_pct(last_row["volatility_30"], signed=False)),
        ("Drawdown", views.fmt_pct(last_row["drawdown"])),
    ]
    cells = [*st.columns(4), *st.columns(4)]
    for cell, (label, value) in zip(cells, metrics, strict=True):
        cell.metric(label, value)
    st.caption(
        "Close is the price as traded; the chart, the moving averages, returns, volatility and drawdown use the "
        "adjusted close (splits and dividends), as the marts do."
    )
    st.plotly_chart(view.figure, width="stretch", key="symbol_chart")


def intraday_page() -> None:
    st.title("Intraday")
    reader = _open()
    _as_of(reader)
    listing = queries.symbols(reader)
    with_quotes = listing[listing["has_quotes"].astype(bool)]["symbol"].tolist()
    if not with_quotes:
        st.info("No quotes in the warehouse yet: run the producer and consumer, then `stockpipe load bronze` and dbt.")
        return
    pick, pick_day = st.columns(2)
    with pick:
        symbol = _symbol_choice(with_quotes, "intraday_symbol")
    sessions = views._dates(queries.quote_sessions(reader, symbol), "session_date")["session_date"].tolist()
    wanted = _param_date("day", sessions[0])
    with pick_day:
        day = st.selectbox("Session", sessions, index=sessions.index(wanted) if wanted in sessions else 0,
                           key=f"day_{symbol}")  # fmt: skip
    st.query_params["day"] = day.isoformat()
    view = views.intraday_view(reader, symbol, day)
    session = view.session
    if session is not None:
        kind = "early close" if session.early_close else "regular session"
        st.markdown(
            f"NYSE {kind}: {session.open_ny:%H:%M}-{session.close_ny:%H:%M} New York "
            f"({session.open_utc:%H:%M}-{session.close_utc:%H:%M} UTC)"
        )
    rng = view.range
    cells = st.columns(6)
    cells[0].metric("Last price", views.fmt_price(rng.get("last_price")), views.fmt_pct(rng.get("last_vs_prev_close")))
    cells[1].metric("Previous close", views.fmt_price(rng.get("prev_close")))
    cells[2].metric("Day high", views.fmt_price(rng.get("day_high")), views.fmt_pct(rng.get("high_vs_prev_close")))
    cells[3].metric("Day low", views.fmt_price(rng.get("day_low")), views.fmt_pct(rng.get("low_vs_prev_close")))
    cells[4].metric("Quotes", f"{len(view.quotes):,}")
    cells[5].metric("Trades", f"{len(view.trades):,}")
    st.plotly_chart(view.figure, width="stretch", key="intraday_chart")


def health_page() -> None:
    st.title("Pipeline health")
    reader = _open()
    as_of = _as_of(reader)
    # Dead letters of the 30 days before the newest session, or before today if that is earlier (a replay).
    since = min(datetime.now(UTC).date(), as_of.last_session or date.max) - timedelta(days=30)
    view = views.health_view(reader, since)
    st.subheader("Freshness per symbol")
    counts = view.freshness["freshness_status"].value_counts()
    cells = st.columns(3)
    for cell, status in zip(cells, ("fresh", "late", "stale"), strict=True):
        cell.metric(status.capitalize(), int(counts.get(status, 0)))
    st.dataframe(view.freshness, hide_index=True, width="stretch", key="freshness")

    st.subheader("Dead letters")
    if view.dead_letters.empty:
        st.success(f"No dead letters since {since}.")
    else:
        left, right = st.columns([2, 3])
        left.plotly_chart(view.dead_letters_by_reason, width="stretch", key="dead_letters_chart")
        shown = view.dead_letters.assign(
            detected_date=view.dead_letters["detected_date"].astype(str),
            last_detected_at=pd.to_datetime(view.dead_letters["last_detected_at"], utc=True).dt.strftime(
                "%Y-%m-%d %H:%M:%S UTC"
            ),
        ).drop(columns=["first_detected_at"])
        right.table(shown.set_index("detected_date"))

    st.subheader("Bronze loads and lake objects")
    left, right = st.columns([3, 2])
    left.plotly_chart(view.loads_figure, width="stretch", key="loads_chart")
    right.markdown("**Lake objects in bronze, per dataset**")
    right.dataframe(view.lake, hide_index=True, width="stretch", key="lake_objects")
    st.dataframe(view.loads, hide_index=True, width="stretch", key="loads")

    _stream_section()
    _gaps_section(view.freshness["symbol"].tolist() if not view.freshness.empty else [])


@st.cache_data(ttl=OPTIONS.cache_ttl_s, show_spinner=False)
def _stream(bootstrap: str) -> Any:
    from stockpipe.dashboard.stream import stream_state

    return stream_state(SETTINGS.kafka, OPTIONS.consumer_group, OPTIONS.stream_timeout_s)


def _stream_section() -> None:
    st.subheader("Stream: consumer lag and heartbeats")
    state = _stream(SETTINGS.kafka.bootstrap_servers)
    if not state.reachable:
        st.info(f"{state.note}. Lag and heartbeats are shown when the stream is reachable.")
        return
    left, right = st.columns(2)
    left.markdown(f"**Consumer group `{OPTIONS.consumer_group}`: lag per partition**")
    if state.lag.empty:
        left.write("No quotes or trades topic yet.")
    else:
        left.dataframe(state.lag, hide_index=True, width="stretch", key="lag")
    right.markdown("**Newest heartbeat per component (last hour)**")
    if state.heartbeats.empty:
        right.write("No heartbeat in the last hour: are the producer and consumer running?")
    else:
        right.dataframe(state.heartbeats, hide_index=True, width="stretch", key="heartbeats")


@st.cache_data(ttl=OPTIONS.cache_ttl_s, show_spinner=False)
def _gaps(lake_url: str, symbols: tuple[str, ...]) -> Any:
    from stockpipe.dashboard.stream import history_gaps

    return history_gaps(SETTINGS.lake, list(symbols))


def _gaps_section(symbols: list[str]) -> None:
    st.subheader("History gaps")
    try:
        gaps = _gaps(SETTINGS.lake.url, tuple(symbols))
    except ImportError as exc:
        st.info(f"The batch history code is not installed here ({exc.name}): gaps are not computed.")
        return
    except OSError as exc:
        st.info(f"The lake at {SETTINGS.lake.url} cannot be listed ({exc}): gaps are not computed.")
        return
    if gaps.runs.empty:
        st.success(f"No gaps: the lake holds every session {gaps.start}..{gaps.end} for the {len(symbols)} symbols.")
        return
    st.markdown(
        f"`stockpipe history gaps` would fetch {int(gaps.runs['sessions'].sum())} sessions "
        f"({gaps.start}..{gaps.end}) for {gaps.runs['symbol'].nunique()} symbols:"
    )
    st.dataframe(gaps.runs.astype({"first": str, "last": str}), hide_index=True, width="stretch", key="gaps")


PAGES = [
    st.Page(market_page, title="Market", url_path="market", default=True),
    st.Page(symbol_page, title="Symbol", url_path="symbol"),
    st.Page(intraday_page, title="Intraday", url_path="intraday"),
    st.Page(health_page, title="Pipeline health", url_path="health"),
]
st.navigation(PAGES).run()
