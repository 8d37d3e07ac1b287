{#-
  Incremental: the spans only grow (min/max), so the rows that arrived since the last run are folded
  into the symbols' current spans.
-#}
{{
    config(
        materialized='incremental',
        unique_key='symbol',
        incremental_strategy='merge',
        on_schema_change='fail',
    )
}}

with bars as (
    select
        slv_daily_bars.symbol,
        min(slv_daily_bars.session_date) as first_bar_date,
        max(slv_daily_bars.session_date) as last_bar_date,
        max(slv_daily_bars.loaded_at) as loaded_at
    from {{ ref('slv_daily_bars') }} as slv_daily_bars
    where {{ new_since_last_run('slv_daily_bars.loaded_at') }}
    group by slv_daily_bars.symbol
),

quotes as (
    select
        slv_quotes.symbol,
        min(slv_quotes.quote_ts) as first_quote_ts,
        max(slv_quotes.quote_ts) as last_quote_ts,
        max(slv_quotes.loaded_at) as loaded_at
    from {{ ref('slv_quotes') }} as slv_quotes
    where {{ new_since_last_run('slv_quotes.loaded_at') }}
    group by slv_quotes.symbol
),

trades as (
    select
        slv_trades.symbol,
        min(slv_trades.trade_ts) as first_trade_ts,
        max(slv_trades.trade_ts) as last_trade_ts,
        max(slv_trades.loaded_at) as loaded_at
    from {{ ref('slv_trades') }} as slv_trades
    where {{ new_since_last_run('slv_trades.loaded_at') }}
    group by slv_trades.symbol
),

symbols as (
    select bars.symbol from bars
    union
    select quotes.symbol from quotes
    union
    select trades.symbol from trades
),

arrived as (
    select
        symbols.symbol,
        bars.first_bar_date,
        bars.last_bar_date,
        quotes.first_quote_ts,
        quotes.last_quote_ts,
        trades.first_trade_ts,
        trades.last_trade_ts,
        greatest(
            coalesce(bars.loaded_at, quotes.loaded_at, trades.loaded_at),
            coalesce(quotes.loaded_at, trades.loaded_at, bars.loaded_at),
            coalesce(trades.loaded_at, bars.loaded_at, quotes.loaded_at)
        ) as loaded_at
    from symbols
    left join bars on symbols.symbol = bars.symbol
    left join quotes on symbols.symbol = quotes.symbol
    left join trades on symbols.symbol = trades.symbol
),

{% if is_incremental() %}
    spans as (
        select
            arrived.symbol,
            least(
                coalesce(arrived.first_bar_date, current_span.first_bar_date),
                coalesce(current_span.first_bar_date, arrived.first_bar_date)
            ) as first_bar_date,
            greatest(
                coalesce(arrived.last_bar_date, current_span.last_bar_date),
                coalesce(current_span.last_bar_date, arrived.last_bar_date)
            ) as last_bar_date,
            least(
                coalesce(arrived.first_quote_ts, current_span.first_quote_ts),
                coalesce(current_span.first_quote_ts, arrived.first_quote_ts)
            ) as first_quote_ts,
            greatest(
                coalesce(arrived.last_quote_ts, current_span.last_quote_ts),
                coalesce(current_span.last_quote_ts, arrived.last_quote_ts)
            ) as last_quote_ts,
            least(
                coalesce(arrived.first_trade_ts, current_span.first_trade_ts),
                coalesce(current_span.first_trade_ts, arrived.first_trade_ts)
            ) as first_trade_ts,
            greatest(
                coalesce(arrived.last_trade_ts, current_span.last_trade_ts),
                coalesce(current_span.last_trade_ts, arrived.last_trade_ts)
            ) as last_trade_ts,
            arrived.loaded_at
        from arrived
        left join {{ this }} as current_span
            on arrived.symbol = current_span.symbol
    )
{% else %}
    spans as (
        select * from arrived
    )
{% endif %}

select
    cast(spans.symbol as varchar) as symbol,
    spans.first_bar_date,
    spans.last_bar_date,
    spans.first_quote_ts,
    spans.last_quote_ts,
    spans.first_trade_ts,
    spans.last_trade_ts,
    cast(spans.last_bar_date is not null as boolean) as has_daily_bars,
    cast(spans.last_quote_ts is not null as boolean) as has_quotes,
    cast(spans.last_trade_ts is not null as boolean) as has_trades,
    spans.loaded_at
from spans
