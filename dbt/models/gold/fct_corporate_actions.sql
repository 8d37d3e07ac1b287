{#-
  Splits and cash dividends, from the bars that carry them. A view: the actions are a filter of
  fct_daily_bars, so a corrected or removed action can never outlive its bar.
-#}
{{ config(materialized='view') }}

select
    fct_daily_bars.symbol,
    fct_daily_bars.session_date as ex_date,
    cast('split' as varchar) as kind,
    fct_daily_bars.split_factor as ratio,
    cast(null as double) as amount,
    cast(1 / fct_daily_bars.split_factor as double) as price_step,
    fct_daily_bars.data_source,
    fct_daily_bars.loaded_at
from {{ ref('fct_daily_bars') }} as fct_daily_bars
where fct_daily_bars.split_factor <> 1

union all

select
    fct_daily_bars.symbol,
    fct_daily_bars.session_date as ex_date,
    cast('dividend' as varchar) as kind,
    cast(null as double) as ratio,
    fct_daily_bars.dividend_cash as amount,
    cast(
        fct_daily_bars.close_price / (fct_daily_bars.close_price + fct_daily_bars.dividend_cash) as double
    ) as price_step,
    fct_daily_bars.data_source,
    fct_daily_bars.loaded_at
from {{ ref('fct_daily_bars') }} as fct_daily_bars
where fct_daily_bars.dividend_cash <> 0
