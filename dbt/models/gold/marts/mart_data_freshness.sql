{#-
  Per symbol: how far behind each kind of data is, measured on the NYSE clock so that nights,
  weekends, holidays and early closes never make data look late.
  - bar_sessions_behind: sessions whose bar is due (close + bar_grace_hours) after the newest bar;
  - quote/trade_market_minutes_behind: open-market minutes since the newest quote/trade.
  As of now, or of the `freshness_as_of` var.
-#}
{{ config(materialized='view') }}

with as_of as (
    select {{ as_of_timestamp() }} as as_of_ts
),

sessions as (
    select
        dim_date.date_day,
        dim_date.session_open_utc,
        dim_date.session_close_utc
    from {{ ref('dim_date') }} as dim_date
    where dim_date.is_session
),

bars_behind as (
    select
        dim_symbol.symbol,
        count(sessions.date_day) as sessions_behind
    from {{ ref('dim_symbol') }} as dim_symbol
    cross join as_of
    left join sessions
        on
            dim_symbol.last_bar_date < sessions.date_day
            and as_of.as_of_ts >= {{ add_hours('sessions.session_close_utc', var('bar_grace_hours')) }}
    where dim_symbol.has_daily_bars
    group by dim_symbol.symbol
),

quotes_behind as (
    select
        dim_symbol.symbol,
        {{ market_seconds_between('dim_symbol.last_quote_ts', 'as_of.as_of_ts', 'sessions') }} / 60.0 as minutes_behind
    from {{ ref('dim_symbol') }} as dim_symbol
    cross join as_of
    left join sessions
        on
            dim_symbol.last_quote_ts < sessions.session_close_utc
            and as_of.as_of_ts > sessions.session_open_utc
    where dim_symbol.has_quotes
    group by dim_symbol.symbol
),

trades_behind as (
    select
        dim_symbol.symbol,
        {{ market_seconds_between('dim_symbol.last_trade_ts', 'as_of.as_of_ts', 'sessions') }} / 60.0 as minutes_behind
    from {{ ref('dim_symbol') }} as dim_symbol
    cross join as_of
    left join sessions
        on
            dim_symbol.last_trade_ts < sessions.session_close_utc
            and as_of.as_of_ts > sessions.session_open_utc
    where dim_symbol.has_trades
    group by dim_symbol.symbol
),

measured as (
    select
        dim_symbol.symbol,
        dim_symbol.last_bar_date,
        cast(bars_behind.sessions_behind as bigint) as bar_sessions_behind,
        dim_symbol.last_quote_ts,
        cast(round(quotes_behind.minutes_behind, 1) as double) as quote_market_minutes_behind,
        dim_symbol.last_trade_ts,
        cast(round(trades_behind.minutes_behind, 1) as double) as trade_market_minutes_behind
    from {{ ref('dim_symbol') }} as dim_symbol
    left join bars_behind on dim_symbol.symbol = bars_behind.symbol
    left join quotes_behind on dim_symbol.symbol = quotes_behind.symbol
    left join trades_behind on dim_symbol.symbol = trades_behind.symbol
)

select
    measured.*,
    cast(
        case
            when
                measured.bar_sessions_behind >= 2
                or measured.quote_market_minutes_behind > {{ var('quote_stale_minutes') }}
                then 'stale'
            when
                measured.bar_sessions_behind = 1
                or measured.quote_market_minutes_behind > {{ var('quote_late_minutes') }}
                then 'late'
            else 'fresh'
        end as varchar
    ) as freshness_status,
    as_of.as_of_ts as measured_at
from measured
cross join as_of
