{#-
  Per symbol and session: daily return, 7/30/90-session moving averages of the close, 30-session
  realised volatility and the year-to-date return.

  Windows are over sessions (dim_date.session_index), not rows: a missing bar leaves a gap and the
  window's statistic is null until it holds every session (strict windows). That makes the model
  incremental without drift: when bars of a symbol arrive (new sessions or restated old ones), only
  its rows from the earliest changed session onward are recomputed, from a lookback of the longest
  window; a restated bar therefore also refreshes the year-to-date returns that depend on it.

  A full build computes the statistics with window functions over each symbol's history. An
  incremental run needs them for a few rows only (one per symbol after a new session), and window
  functions would compute every row of the 90-session lookback: instead each recomputed row gathers
  its own window, the rows 0..89 sessions before it (a join on the session offset), and aggregates
  it. Both read the same rows with the same aggregates and the same strictness (only the order in
  which a sum adds its terms may differ, far below the 4 and 6 decimals the mart keeps).
-#}
{{
    config(
        materialized='incremental',
        unique_key=['symbol', 'session_date'],
        incremental_strategy='merge',
        on_schema_change='fail',
    )
}}

{%- set lookback = 90 %}
{%- set annualise = 'sqrt(' ~ var('trading_days_per_year') ~ ')' %}

with changed as (
    select
        fct_daily_bars.symbol,
        min(fct_daily_bars.session_date) as first_date
    from {{ ref('fct_daily_bars') }} as fct_daily_bars
    where {{ new_since_last_run('fct_daily_bars.loaded_at') }}
    group by fct_daily_bars.symbol
),

changed_from as (
    select
        changed.symbol,
        first_day.session_index as first_index,
        coalesce(lookback_day.date_day, cast('1900-01-01' as date)) as lookback_date
    from changed
    inner join {{ ref('dim_date') }} as first_day
        on changed.first_date = first_day.date_day
    left join {{ ref('dim_date') }} as lookback_day
        on first_day.session_index - {{ lookback }} = lookback_day.session_index
),

scope as (
    select
        fct_daily_bars.symbol,
        fct_daily_bars.session_date,
        fct_daily_bars.close_price,
        fct_daily_bars.loaded_at,
        dim_date.session_index,
        dim_date.prior_year_last_session_date,
        changed_from.first_index
    from {{ ref('fct_daily_bars') }} as fct_daily_bars
    inner join changed_from
        on
            fct_daily_bars.symbol = changed_from.symbol
            and fct_daily_bars.session_date >= changed_from.lookback_date
    inner join {{ ref('dim_date') }} as dim_date
        on fct_daily_bars.session_date = dim_date.date_day
    -- A constant bound lets the scan skip the history before the earliest lookback (zone maps).
    where fct_daily_bars.session_date >= (select min(bounds.lookback_date) from changed_from as bounds)
),

returns as (
    select
        scope.*,
        previous.close_price as prev_close_price,
        scope.close_price / previous.close_price - 1 as daily_return,
        ln(scope.close_price / previous.close_price) as log_return
    from scope
    left join scope as previous
        on
            scope.symbol = previous.symbol
            and scope.session_index = previous.session_index + 1
),

{% if is_incremental() %}
    window_offsets as (
        -- 0..{{ lookback - 1 }}: how many sessions before a recomputed row a row of its windows lies.
        select tens.d * 10 + ones.d as sessions_back
        from (values (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)) as tens (d)
        cross join (values (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)) as ones (d)
        where tens.d * 10 + ones.d < {{ lookback }}
    ),

    window_stats as (
        select
            recomputed.symbol,
            recomputed.session_index,
            avg(case when window_offsets.sessions_back < 7 then in_window.close_price end) as avg_7,
            count(case when window_offsets.sessions_back < 7 then in_window.close_price end) as n_7,
            avg(case when window_offsets.sessions_back < 30 then in_window.close_price end) as avg_30,
            count(case when window_offsets.sessions_back < 30 then in_window.close_price end) as n_30,
            avg(in_window.close_price) as avg_90,
            count(in_window.close_price) as n_90,
            stddev_samp(case when window_offsets.sessions_back < 30 then in_window.log_return end) as sd_30,
            count(case when window_offsets.sessions_back < 30 then in_window.log_return end) as nr_30
        from returns as recomputed
        cross join window_offsets
        inner join returns as in_window
            on
                recomputed.symbol = in_window.symbol
                and recomputed.session_index - window_offsets.sessions_back = in_window.session_index
        where recomputed.session_index >= recomputed.first_index
        group by recomputed.symbol, recomputed.session_index
    ),

    windowed as (
        select
            returns.*,
            window_stats.avg_7,
            window_stats.n_7,
            window_stats.avg_30,
            window_stats.n_30,
            window_stats.avg_90,
            window_stats.n_90,
            window_stats.sd_30,
            window_stats.nr_30
        from returns
        inner join window_stats
            on
                returns.symbol = window_stats.symbol
                and returns.session_index = window_stats.session_index
    ),
{% else %}
    windowed as (
        -- Inline window specs: Snowflake has no WINDOW clause.
        {%- set session_window = 'partition by returns.symbol order by returns.session_index range between ' %}
        select
            returns.*,
            avg(returns.close_price) over (
                {{ session_window }} 6 preceding and current row
            ) as avg_7,
            count(returns.close_price) over (
                {{ session_window }} 6 preceding and current row
            ) as n_7,
            avg(returns.close_price) over (
                {{ session_window }} 29 preceding and current row
            ) as avg_30,
            count(returns.close_price) over (
                {{ session_window }} 29 preceding and current row
            ) as n_30,
            avg(returns.close_price) over (
                {{ session_window }} 89 preceding and current row
            ) as avg_90,
            count(returns.close_price) over (
                {{ session_window }} 89 preceding and current row
            ) as n_90,
            stddev_samp(returns.log_return) over (
                {{ session_window }} 29 preceding and current row
            ) as sd_30,
            count(returns.log_return) over (
                {{ session_window }} 29 preceding and current row
            ) as nr_30
        from returns
    ),
{% endif %}

year_start as (
    select
        fct_daily_bars.symbol,
        fct_daily_bars.session_date,
        fct_daily_bars.close_price
    from {{ ref('fct_daily_bars') }} as fct_daily_bars
    where fct_daily_bars.session_date in (select distinct windowed.prior_year_last_session_date from windowed)
)

select
    windowed.symbol,
    windowed.session_date,
    windowed.close_price,
    windowed.prev_close_price,
    cast(round(windowed.daily_return, 6) as double) as daily_return,
    cast(round(windowed.log_return, 6) as double) as log_return,
    cast(case when windowed.n_7 = 7 then round(windowed.avg_7, 4) end as double) as ma_7,
    cast(case when windowed.n_30 = 30 then round(windowed.avg_30, 4) end as double) as ma_30,
    cast(case when windowed.n_90 = 90 then round(windowed.avg_90, 4) end as double) as ma_90,
    cast(case when windowed.nr_30 = 30 then round(windowed.sd_30 * {{ annualise }}, 6) end as double)
        as volatility_30,
    year_start.close_price as prior_year_close_price,
    cast(round(windowed.close_price / year_start.close_price - 1, 6) as double) as ytd_return,
    windowed.loaded_at
from windowed
left join year_start
    on
        windowed.symbol = year_start.symbol
        and windowed.prior_year_last_session_date = year_start.session_date
where windowed.session_index >= windowed.first_index
