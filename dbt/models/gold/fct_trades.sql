{{
    config(
        materialized='incremental',
        unique_key='trade_id',
        incremental_strategy='merge',
        on_schema_change='fail',
    )
}}

select
    slv_trades.trade_id,
    slv_trades.symbol,
    slv_trades.trade_ts,
    slv_trades.session_date,
    slv_trades.price,
    slv_trades.size,
    slv_trades.seq,
    cast(slv_trades.price * slv_trades.size as double) as notional,
    slv_trades.conditions,
    cast(
        coalesce(
            dim_date.is_session
            and slv_trades.trade_ts >= dim_date.session_open_utc
            and slv_trades.trade_ts < dim_date.session_close_utc,
            false
        ) as boolean
    ) as is_regular_session,
    slv_trades.data_source,
    slv_trades.fetched_at,
    slv_trades.loaded_at
from {{ ref('slv_trades') }} as slv_trades
left join {{ ref('dim_date') }} as dim_date
    on slv_trades.session_date = dim_date.date_day
where {{ new_since_last_run('slv_trades.loaded_at') }}
