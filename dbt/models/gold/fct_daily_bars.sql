{#-
  Daily bars with the raw (as traded) OHLCV and adjusted OHLCV derived from the corporate actions.

  Adjusted prices are derived here, not taken from the provider: a provider adjusts as of its fetch,
  so a split that arrives later would leave every stored adjusted value before it stale. Each action
  going ex on session e steps prices before e by
      price_step(e) = (1 / split_factor(e)) * close(e) / (close(e) + dividend_cash(e))
  and volumes by split_factor(e); a bar's adjusted price is its raw price times the product of the
  steps of all actions after it (adjustment_factor). A split makes the split day's return its true
  return (close * ratio / previous close - 1), a dividend makes it the total return with the dividend
  reinvested at the ex-date close ((close + cash) / previous close - 1).

  Incremental: when an action arrives for a symbol, or a bar that held one is replaced (a corrected
  or removed action), every bar of that symbol is restated; otherwise only the bars that arrived are
  computed (their factor needs only the symbol's actions after them, read as context). Steps of
  bars without actions are exactly 1, so both paths multiply the same factors.
-#}
{{
    config(
        materialized='incremental',
        unique_key=['symbol', 'session_date'],
        incremental_strategy='merge',
        on_schema_change='fail',
    )
}}

{%- set has_action = '(slv_daily_bars.split_factor <> 1 or slv_daily_bars.dividend_cash <> 0)' %}

with
{% if is_incremental() %}
    arrived as (
        select slv_daily_bars.*
        from {{ ref('slv_daily_bars') }} as slv_daily_bars
        where {{ new_since_last_run('slv_daily_bars.loaded_at') }}
    ),

    restated_symbols as (
        select distinct arrived.symbol
        from arrived
        left join {{ this }} as current_bar
            on
                arrived.symbol = current_bar.symbol
                and arrived.session_date = current_bar.session_date
        where
            arrived.split_factor <> 1
            or arrived.dividend_cash <> 0
            or current_bar.split_factor <> 1
            or current_bar.dividend_cash <> 0
    ),

    plain_symbols as (
        select
            arrived.symbol,
            min(arrived.session_date) as first_date
        from arrived
        where arrived.symbol not in (select restated_symbols.symbol from restated_symbols)
        group by arrived.symbol
    ),

    scope as (
        -- Every bar of a restated symbol.
        select
            slv_daily_bars.*,
            true as is_output
        from {{ ref('slv_daily_bars') }} as slv_daily_bars
        where slv_daily_bars.symbol in (select restated_symbols.symbol from restated_symbols)
        union all
        -- The bars that arrived for other symbols (none holds an action) ...
        select
            arrived.*,
            true as is_output
        from arrived
        where arrived.symbol in (select plain_symbols.symbol from plain_symbols)
        union all
        -- ... and, as context for their factors, the actions of those symbols after them.
        select
            slv_daily_bars.*,
            false as is_output
        from {{ ref('slv_daily_bars') }} as slv_daily_bars
        inner join plain_symbols
            on
                slv_daily_bars.symbol = plain_symbols.symbol
                and slv_daily_bars.session_date > plain_symbols.first_date
        where {{ has_action }}
    ),
{% else %}
    scope as (
        select
            slv_daily_bars.*,
            true as is_output
        from {{ ref('slv_daily_bars') }} as slv_daily_bars
    ),
{% endif %}

steps as (
    select
        scope.*,
        ln(1 / scope.split_factor * scope.close_price / (scope.close_price + scope.dividend_cash)) as log_price_step,
        ln(scope.split_factor) as log_share_step
    from scope
),

factors as (
    select
        steps.*,
        cast(round(exp(coalesce(sum(steps.log_price_step) over (
            partition by steps.symbol order by steps.session_date rows between 1 following and unbounded following
        ), 0)), 12) as double) as adjustment_factor,
        cast(round(exp(coalesce(sum(steps.log_share_step) over (
            partition by steps.symbol order by steps.session_date rows between 1 following and unbounded following
        ), 0)), 12) as double) as volume_factor
    from steps
)

select
    factors.symbol,
    factors.session_date,
    factors.open_price,
    factors.high_price,
    factors.low_price,
    factors.close_price,
    factors.volume,
    cast(factors.close_price * factors.volume as double) as dollar_volume,
    cast(round(factors.open_price * factors.adjustment_factor, 6) as double) as adj_open,
    cast(round(factors.high_price * factors.adjustment_factor, 6) as double) as adj_high,
    cast(round(factors.low_price * factors.adjustment_factor, 6) as double) as adj_low,
    cast(round(factors.close_price * factors.adjustment_factor, 6) as double) as adj_close,
    cast(round(factors.volume * factors.volume_factor, 3) as double) as adj_volume,
    factors.split_factor,
    factors.dividend_cash,
    factors.adjustment_factor,
    factors.provider_adj_close,
    factors.data_source,
    factors.fetched_at,
    factors.loaded_at
from factors
where factors.is_output
