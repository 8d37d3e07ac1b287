"""What each page shows, built from the query layer without Streamlit: tables and Plotly figures.

The Streamlit app renders these; the benchmark times them (query layer plus figure building).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
import plotly.graph_objects as go  # type: ignore[import-untyped]
from plotly.subplots import make_subplots  # type: ignore[import-untyped]

from stockpipe.dashboard import queries
from stockpipe.dashboard.queries import Reader
from stockpipe.marketdata import calendar

UP, DOWN, NEUTRAL = "#1a9850", "#d73027", "#4575b4"
MA_COLOURS = {"ma_7": "#ff7f0e", "ma_30": "#9467bd", "ma_90": "#17becf"}


# -- formatting: the page shows the marts' values exactly (prices 2-4 decimals, returns 6) ---------------


def fmt_price(value: float | None) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:,.2f}"


def fmt_level(value: float | None) -> str:
    """A moving average: the mart keeps 4 decimals."""
    return "—" if value is None or pd.isna(value) else f"{value:,.4f}"


def fmt_pct(value: float | None, signed: bool = True) -> str:
    """A ratio as a percentage, with every decimal the mart keeps (6 decimals of a ratio = 4 of a percent)."""
    if value is None or pd.isna(value):
        return "—"
    return f"{value * 100:+.4f}%" if signed else f"{value * 100:.4f}%"


def _dates(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for column in columns:
        if column in frame:
            frame[column] = pd.to_datetime(frame[column]).dt.date
    return frame


def _utc(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for column in columns:
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


@dataclass
class AsOf:
    bars_loaded_at: datetime | None
    quotes_loaded_at: datetime | None
    last_session: date | None
    last_quote_ts: datetime | None

    @classmethod
    def load(cls, q: Reader) -> AsOf:
        row = _utc(_dates(queries.as_of(q), "last_session"), "bars_loaded_at", "quotes_loaded_at", "last_quote_ts")
        values = {k: (None if pd.isna(v) else v) for k, v in row.iloc[0].to_dict().items()} if len(row) else {}
        return cls(
            **{k: values.get(k) for k in ("bars_loaded_at", "quotes_loaded_at", "last_session", "last_quote_ts")}
        )

    def caption(self, snapshot: queries.Snapshot) -> str:
        def ts(at: datetime | None) -> str:
            return "never" if at is None else pd.Timestamp(at).strftime("%Y-%m-%d %H:%M:%S UTC")

        source = (
            f"read-only snapshot of the DuckDB file as modified {ts(snapshot.source_modified_at)}"
            if snapshot.kind == "duckdb snapshot"
            else "live Snowflake queries"
        )
        return (
            f"Data as of: newest session {self.last_session or '—'} · bars loaded {ts(self.bars_loaded_at)} · "
            f"quotes loaded {ts(self.quotes_loaded_at)} · {source}"
        )


# -- Market ---------------------------------------------------------------------------------------------


@dataclass
class MarketView:
    latest: pd.DataFrame
    heatmap: go.Figure
    gainers: pd.DataFrame
    losers: pd.DataFrame
    movers: go.Figure


def market_view(q: Reader, heatmap_sessions: int, heatmap_symbols: int, movers: int) -> MarketView:
    latest = _dates(queries.latest_sessions(q), "session_date")
    returns = _dates(queries.daily_returns_since(q, heatmap_sessions), "session_date")
    # The most traded symbols (dollar volume of their newest session) fill the heatmap's rows.
    chosen = latest.nlargest(heatmap_symbols, "dollar_volume")["symbol"].tolist() if len(latest) else []
    grid = (
        returns[returns["symbol"].isin(chosen)]
        .pivot_table(index="symbol", columns="session_date", values="daily_return")
        .reindex(sorted(chosen, reverse=True))
    )
    heatmap = go.Figure(
        go.Heatmap(
            z=grid.to_numpy() * 100,
            x=[d.isoformat() for d in grid.columns],
            y=list(grid.index),
            colorscale="RdYlGn",
            zmid=0,
            colorbar={"title": "daily %"},
            hovertemplate="%{y} %{x}: %{z:.2f}%<extra></extra>",
        )
    )
    heatmap.update_layout(
        title=f"Daily returns, last {len(grid.columns)} sessions, {len(grid.index)} most traded symbols",
        height=max(320, 22 * len(grid.index) + 120),
        xaxis={"type": "category"},
        margin={"l": 70, "r": 20, "t": 50, "b": 40},
    )
    ranked = latest.dropna(subset=["daily_return"]).sort_values("daily_return")
    gainers = ranked[ranked["daily_return"] > 0].tail(movers).iloc[::-1]
    losers = ranked[ranked["daily_return"] < 0].head(movers)
    both = pd.concat([losers, gainers.iloc[::-1]]).drop_duplicates("symbol")
    bars = go.Figure(
        go.Bar(
            x=both["daily_return"] * 100,
            y=both["symbol"],
            orientation="h",
            marker_color=[UP if r >= 0 else DOWN for r in both["daily_return"]],
            hovertemplate="%{y}: %{x:.4f}%<extra></extra>",
        )
    )
    bars.update_layout(
        title="Top movers, newest session (daily return %)", height=max(260, 28 * len(both) + 90),
        margin={"l": 70, "r": 20, "t": 50, "b": 40},
    )  # fmt: skip
    return MarketView(latest, heatmap, gainers, losers, bars)


# -- Symbol ---------------------------------------------------------------------------------------------


@dataclass
class SymbolView:
    history: pd.DataFrame
    figure: go.Figure
    last: dict[str, Any] = field(default_factory=dict)


def _rangebreaks(days: pd.Series) -> list[dict[str, Any]]:
    """Hide weekends and the weekdays without a bar (holidays, missing bars) from the date axis."""
    if days.empty:
        return []
    present = set(days)
    weekdays = pd.bdate_range(min(days), max(days)).date
    return [{"bounds": ["sat", "mon"]}, {"values": [d.isoformat() for d in weekdays if d not in present]}]


def _action_label(split: float, cash: float) -> str:
    parts = []
    if split and split != 1:
        parts.append(f"split {split:g}:1" if split >= 1 else f"reverse split 1:{1 / split:g}")
    if cash:
        parts.append(f"dividend {cash:,.2f}")
    return ", ".join(parts)


def symbol_view(q: Reader, symbol: str, start: date, end: date) -> SymbolView:
    """Candles on adjusted prices, like the marts' statistics (no step at splits or dividends)."""
    history = _dates(queries.symbol_history(q, symbol, start, end), "session_date")
    x = [d.isoformat() for d in history["session_date"]]
    fig = make_subplots(
        rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.03, row_heights=[0.5, 0.17, 0.17, 0.16],
        subplot_titles=(f"{symbol} daily, adjusted for splits and dividends", "Volume (adjusted)",
                        "30-session volatility (annualised)", "Drawdown from the running peak"),
    )  # fmt: skip
    fig.add_trace(
        go.Candlestick(
            x=x, open=history["adj_open"], high=history["adj_high"], low=history["adj_low"],
            close=history["adj_close"], name=symbol, increasing_line_color=UP, decreasing_line_color=DOWN,
        ),
        row=1, col=1,
    )  # fmt: skip
    for column, colour in MA_COLOURS.items():
        name = column.upper().replace("_", " ")
        fig.add_trace(go.Scatter(x=x, y=history[column], name=name, line={"color": colour, "width": 1.4}), 1, 1)
    actions = history[(history["split_factor"].fillna(1) != 1) | (history["dividend_cash"].fillna(0) != 0)]
    if len(actions):
        fig.add_trace(
            go.Scatter(
                x=[d.isoformat() for d in actions["session_date"]], y=actions["adj_high"] * 1.02, mode="markers",
                name="corporate actions", marker={"symbol": "triangle-down", "size": 10, "color": "#444444"},
                text=[_action_label(s, c) for s, c in zip(actions["split_factor"].fillna(1),
                                                         actions["dividend_cash"].fillna(0), strict=True)],
                hovertemplate="%{x}: %{text}<extra></extra>",
            ),
            1, 1,
        )  # fmt: skip
    up = history["adj_close"] >= history["adj_open"]
    fig.add_trace(
        go.Bar(x=x, y=history["adj_volume"], name="volume", marker_color=[UP if u else DOWN for u in up]), 2, 1
    )
    fig.add_trace(go.Scatter(x=x, y=history["volatility_30"] * 100, name="volatility %", line={"color": NEUTRAL}), 3, 1)
    fig.add_trace(
        go.Scatter(x=x, y=history["drawdown"] * 100, name="drawdown %", fill="tozeroy", line={"color": DOWN}), 4, 1
    )
    fig.update_layout(height=900, xaxis_rangeslider_visible=False, margin={"l": 60, "r": 20, "t": 40, "b": 30})
    fig.update_xaxes(rangebreaks=_rangebreaks(history["session_date"]))
    last = history.iloc[-1].to_dict() if len(history) else {}
    return SymbolView(history, fig, last)


# -- Intraday -------------------------------------------------------------------------------------------


@dataclass
class IntradayView:
    day: date | None
    sessions: list[date]
    quotes: pd.DataFrame
    trades: pd.DataFrame
    range: dict[str, Any]
    session: calendar.Session | None
    figure: go.Figure


def intraday_view(q: Reader, symbol: str, day: date | None) -> IntradayView:
    ranges = _dates(queries.quote_sessions(q, symbol), "session_date")
    sessions = list(ranges["session_date"])
    if day is None:
        day = sessions[0] if sessions else None
    fig = go.Figure()
    if day is None:
        fig.update_layout(title=f"{symbol}: no quotes in the warehouse")
        return IntradayView(None, sessions, pd.DataFrame(), pd.DataFrame(), {}, None, fig)
    quotes = _utc(queries.intraday_quotes(q, symbol, day), "quote_ts")
    trades = _utc(queries.intraday_trades(q, symbol, day), "trade_ts")
    row = ranges[ranges["session_date"] == day]
    rng = row.iloc[0].to_dict() if len(row) else {}
    session = calendar.session(day)
    ny = calendar.NEW_YORK
    if session is not None:
        label = "NYSE session" + (" (early close 13:00)" if session.early_close else "")
        fig.add_vrect(
            x0=session.open_ny.replace(tzinfo=None), x1=session.close_ny.replace(tzinfo=None),
            fillcolor="#4575b4", opacity=0.08, line_width=0, annotation_text=label, annotation_position="top left",
        )  # fmt: skip
    if len(trades):
        fig.add_trace(
            go.Scattergl(
                x=trades["trade_ts"].dt.tz_convert(ny).dt.tz_localize(None), y=trades["price"], mode="markers",
                name="trades", marker={"size": 4, "color": "#999999", "opacity": 0.6},
                customdata=trades["size"], hovertemplate="%{x|%H:%M:%S} %{y:.2f} x %{customdata}<extra>trade</extra>",
            )
        )  # fmt: skip
    if len(quotes):
        fig.add_trace(
            go.Scatter(
                x=quotes["quote_ts"].dt.tz_convert(ny).dt.tz_localize(None), y=quotes["price"], mode="lines",
                name="quotes", line={"color": NEUTRAL, "width": 2},
            )
        )  # fmt: skip
    for key, name, colour in (("prev_close", "previous close", "#555555"), ("day_high", "day high", UP),
                              ("day_low", "day low", DOWN)):  # fmt: skip
        value = rng.get(key)
        if value is not None and not pd.isna(value):
            fig.add_hline(y=value, line_dash="dot", line_color=colour, annotation_text=f"{name} {value:,.2f}")
    if session is not None:  # the whole session and a little around it, so the shading shows where it ends
        margin = timedelta(minutes=20)
        fig.update_xaxes(
            range=[(session.open_ny - margin).replace(tzinfo=None), (session.close_ny + margin).replace(tzinfo=None)]
        )
    fig.update_layout(
        title=f"{symbol} on {day} (New York time)", height=560, xaxis_title="New York time", yaxis_title="USD",
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
    )  # fmt: skip
    return IntradayView(day, sessions, quotes, trades, rng, session, fig)


# -- Pipeline health ------------------------------------------------------------------------------------


@dataclass
class HealthView:
    freshness: pd.DataFrame
    dead_letters: pd.DataFrame
    dead_letters_by_reason: go.Figure
    loads: pd.DataFrame
    loads_figure: go.Figure
    lake: pd.DataFrame


def health_view(q: Reader, since: date, loads: int = 20) -> HealthView:
    fresh = _dates(queries.freshness(q), "last_bar_date")
    letters = _dates(queries.dead_letters(q, since), "detected_date")
    by_reason = letters.groupby(["reason_kind", "source_topic"], as_index=False)["dead_letters"].sum()
    dl_fig = go.Figure()
    for topic, part in by_reason.groupby("source_topic"):
        dl_fig.add_trace(go.Bar(x=part["reason_kind"], y=part["dead_letters"], name=str(topic)))
    dl_fig.update_layout(
        title=f"Dead letters by reason since {since}", barmode="stack", height=340,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
    )  # fmt: skip
    recent = _utc(queries.recent_loads(q, loads), "loaded_at")
    ld_fig = go.Figure()
    for dataset, part in recent.groupby("dataset"):
        ld_fig.add_trace(go.Bar(x=part["loaded_at"], y=part["objects"], name=str(dataset)))
    ld_fig.update_layout(
        title=f"Lake objects per bronze load, last {loads} loads", barmode="stack", height=340,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
    )  # fmt: skip
    lake = _utc(queries.lake_objects(q), "last_loaded_at")
    return HealthView(fresh, letters, dl_fig, recent, ld_fig, lake)
