{{
    config(
        materialized='incremental',
        unique_key=['symbol', 'session_date'],
        incremental_strategy='merge',
        on_schema_change='fail',
    )
}}

select
    slv_daily_bars.symbol,
    slv_daily_bars.session_date,
    slv_daily_bars.open_price,
    slv_daily_bars.high_price,
    slv_daily_bars.low_price,
    slv_daily_bars.close_price,
    slv_daily_bars.volume,
    cast(slv_daily_bars.close_price * slv_daily_bars.volume as double) as dollar_volume,
    slv_daily_bars.data_source,
    slv_daily_bars.fetched_at,
    slv_daily_bars.loaded_at
from {{ ref('slv_daily_bars') }} as slv_daily_bars
where {{ new_since_last_run('slv_daily_bars.loaded_at') }}
