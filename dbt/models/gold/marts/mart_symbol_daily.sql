{#-
  Per symbol and session: daily return, 7/30/90-session moving averages of the close, 30-session
  realised volatility, drawdown from the running peak and the year-to-date return, all on the
  adjusted close (fct_daily_bars.adj_close: total return, no step at a split or dividend), with the
  raw close beside them for display.

  Windows are over sessions (dim_date.session_index), not rows: a missing bar leaves a gap and the
  window's statistic is null until it holds every session (strict windows). That makes the model
  incremental without drift: when bars of a symbol arrive (new sessions or restated old ones), only
  its rows from the earliest changed session onward are recomputed, from a lookback of the longest
  window; a restated bar therefore also refreshes the year-to-date returns that depend on it. A bar
  that brings a split or dividend, or replaces one that had one, restates the symbol's adjusted
  history in fct_daily_bars: its rows are then recomputed from its first bar.

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

with arrived as (
    select
        fct_daily_bars.symbol,
        fct_daily_bars.session_date,
        {% if is_incremental() -%}
            fct_daily_bars.split_factor <> 1
            or fct_daily_bars.dividend_cash <> 0
            or coalesce(current_row.split_factor <> 1 or current_row.dividend_cash <> 0, false)
        {%- else -%}
            fct_daily_bars.split_factor <> 1 or fct_daily_bars.dividend_cash <> 0
        {%- endif %} as touches_action
    from {{ ref('fct_daily_bars') }} as fct_daily_bars
    {% if is_incremental() -%}
        -- A bar that replaces one with an action (corrected or removed) restates the symbol too.
        left join {{ this }} as current_row
            on
                fct_daily_bars.symbol = current_row.symbol
                and fct_daily_bars.session_date = current_row.session_date
    {% endif -%}
    where {{ new_since_last_run('fct_daily_bars.loaded_at') }}
),

arrived_by_symbol as (
    select
        arrived.symbol,
        min(arrived.session_date) as first_arrived_date,
        max(case when arrived.touches_action then 1 else 0 end) = 1 as restated
    from arrived
    group by arrived.symbol
),

first_bars as (
    -- An action restates the symbol's adjusted history (fct_daily_bars): recompute from its first bar.
    select
        fct_daily_bars.symbol,
        min(fct_daily_bars.session_date) as first_bar_date
    from {{ ref('fct_daily_bars') }} as fct_daily_bars
    where
        fct_daily_bars.symbol in (
            select restated.symbol
            from arrived_by_symbol as restated
            where restated.restated
        )
    group by fct_daily_bars.symbol
),

changed as (
    select
        arrived_by_symbol.symbol,
        coalesce(first_bars.first_bar_date, arrived_by_symbol.first_arrived_date) as first_date
    from arrived_by_symbol
    left join first_bars
        on arrived_by_symbol.symbol = first_bars.symbol
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
        fct_daily_bars.adj_close,
        fct_daily_bars.split_factor,
        fct_daily_bars.dividend_cash,
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
        previous.adj_close as prev_adj_close,
        scope.adj_close / previous.adj_close - 1 as daily_return,
        ln(scope.adj_close / previous.adj_close) as log_return,
        max(scope.adj_close) over (
            partition by scope.symbol order by scope.session_index rows between unbounded preceding and current row
        ) as peak_in_scope
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
            avg(case when window_offsets.sessions_back < 7 then in_window.adj_close end) as avg_7,
            count(case when window_offsets.sessions_back < 7 then in_window.adj_close end) as n_7,
            avg(case when window_offsets.sessions_back < 30 then in_window.adj_close end) as avg_30,
            count(case when window_offsets.sessions_back < 30 then in_window.adj_close end) as n_30,
            avg(in_window.adj_close) as avg_90,
            count(in_window.adj_close) as n_90,
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
            avg(returns.adj_close) over (
                {{ session_window }} 6 preceding and current row
            ) as avg_7,
            count(returns.adj_close) over (
                {{ session_window }} 6 preceding and current row
            ) as n_7,
            avg(returns.adj_close) over (
                {{ session_window }} 29 preceding and current row
            ) as avg_30,
            count(returns.adj_close) over (
                {{ session_window }} 29 preceding and current row
            ) as n_30,
            avg(returns.adj_close) over (
                {{ session_window }} 89 preceding and current row
            ) as avg_90,
            count(returns.adj_close) over (
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
        fct_daily_bars.close_price,
        fct_daily_bars.adj_close
    from {{ ref('fct_daily_bars') }} as fct_daily_bars
    where fct_daily_bars.session_date in (select distinct windowed.prior_year_last_session_date from windowed)
),

earlier_peak as (
    -- The running peak before the scope: the highest adjusted close of the symbol's earlier bars
    -- (none when the symbol is recomputed from its first bar, or in a full build).
    select
        changed_from.symbol,
        max(fct_daily_bars.adj_close) as adj_close
    from changed_from
    inner join {{ ref('fct_daily_bars') }} as fct_daily_bars
        on
            changed_from.symbol = fct_daily_bars.symbol
            and changed_from.lookback_date > fct_daily_bars.session_date
    group by changed_from.symbol
),

peaks as (
    select
        windowed.*,
        greatest(windowed.peak_in_scope, coalesce(earlier_peak.adj_close, windowed.peak_in_scope)) as peak_adj_close
    from windowed
    left join earlier_peak
        on windowed.symbol = earlier_peak.symbol
)

select
    peaks.symbol,
    peaks.session_date,
    peaks.close_price,
    peaks.prev_close_price,
    cast(round(peaks.daily_return, 6) as double) as daily_return,
    cast(round(peaks.log_return, 6) as double) as log_return,
    cast(case when peaks.n_7 = 7 then round(peaks.avg_7, 4) end as double) as ma_7,
    cast(case when peaks.n_30 = 30 then round(peaks.avg_30, 4) end as double) as ma_30,
    cast(case when peaks.n_90 = 90 then round(peaks.avg_90, 4) end as double) as ma_90,
    cast(case when peaks.nr_30 = 30 then round(peaks.sd_30 * {{ annualise }}, 6) end as double)
        as volatility_30,
    year_start.close_price as prior_year_close_price,
    cast(round(peaks.adj_close / year_start.adj_close - 1, 6) as double) as ytd_return,
    peaks.adj_close as adj_close_price,
    peaks.prev_adj_close as prev_adj_close_price,
    year_start.adj_close as prior_year_adj_close_price,
    peaks.peak_adj_close as peak_adj_close_price,
    cast(round(peaks.adj_close / peaks.peak_adj_close - 1, 6) as double) as drawdown,
    peaks.split_factor,
    peaks.dividend_cash,
    peaks.loaded_at
from peaks
left join year_start
    on
        peaks.symbol = year_start.symbol
        and peaks.prior_year_last_session_date = year_start.session_date
where peaks.session_index >= peaks.first_index
