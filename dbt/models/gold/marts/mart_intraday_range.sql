{#-
  Per symbol and session, from the latest quote of the session: where the price, the day's high and
  the day's low stand against the previous close (the previous session's daily bar when we have it,
  else the quote's own prev_close). Incremental: sessions with new quotes are recomputed whole, and
  so are the sessions after a bar that arrived late or was corrected (their reference close moved);
  loaded_at is the newest load of the quotes and of that bar, so the next run starts after both.
-#}
{{
    config(
        materialized='incremental',
        unique_key=['symbol', 'session_date'],
        incremental_strategy='merge',
        on_schema_change='fail',
    )
}}

with touched as (
    select distinct
        fct_quotes.symbol,
        fct_quotes.session_date
    from {{ ref('fct_quotes') }} as fct_quotes
    where {{ new_since_last_run('fct_quotes.loaded_at') }}
    {%- if is_incremental() %}
        union
        select
            fct_daily_bars.symbol,
            following_day.date_day as session_date
        from {{ ref('fct_daily_bars') }} as fct_daily_bars
        inner join {{ ref('dim_date') }} as following_day
            on fct_daily_bars.session_date = following_day.previous_session_date
        where {{ new_since_last_run('fct_daily_bars.loaded_at') }}
    {%- endif %}
),

session_quotes as (
    select fct_quotes.*
    from {{ ref('fct_quotes') }} as fct_quotes
    inner join touched
        on
            fct_quotes.symbol = touched.symbol
            and fct_quotes.session_date = touched.session_date
),

sessions as (
    select
        session_quotes.symbol,
        session_quotes.session_date,
        max(session_quotes.quote_ts) as last_quote_ts,
        max(session_quotes.loaded_at) as session_loaded_at,
        count(*) as quote_count
    from session_quotes
    group by session_quotes.symbol, session_quotes.session_date
),

latest as (
    -- (symbol, quote_ts) is the quotes' key: one quote is the session's last.
    select
        session_quotes.*,
        sessions.session_loaded_at,
        sessions.quote_count
    from session_quotes
    inner join sessions
        on
            session_quotes.symbol = sessions.symbol
            and session_quotes.quote_ts = sessions.last_quote_ts
),

with_prev as (
    select
        latest.*,
        coalesce(previous_bar.close_price, latest.prev_close) as reference_close,
        greatest(
            latest.session_loaded_at, coalesce(previous_bar.loaded_at, latest.session_loaded_at)
        ) as range_loaded_at
    from latest
    left join {{ ref('dim_date') }} as dim_date
        on latest.session_date = dim_date.date_day
    left join {{ ref('fct_daily_bars') }} as previous_bar
        on
            latest.symbol = previous_bar.symbol
            and dim_date.previous_session_date = previous_bar.session_date
)

select
    with_prev.symbol,
    with_prev.session_date,
    with_prev.quote_ts as last_quote_ts,
    with_prev.price as last_price,
    with_prev.day_open,
    with_prev.day_high,
    with_prev.day_low,
    cast(with_prev.reference_close as double) as prev_close,
    cast(round(with_prev.price / with_prev.reference_close - 1, 6) as double) as last_vs_prev_close,
    cast(round(with_prev.day_high / with_prev.reference_close - 1, 6) as double) as high_vs_prev_close,
    cast(round(with_prev.day_low / with_prev.reference_close - 1, 6) as double) as low_vs_prev_close,
    cast(with_prev.quote_count as bigint) as quote_count,
    with_prev.range_loaded_at as loaded_at
from with_prev
