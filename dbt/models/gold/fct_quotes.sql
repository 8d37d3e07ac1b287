{{
    config(
        materialized='incremental',
        unique_key=['symbol', 'quote_ts'],
        incremental_strategy='merge',
        on_schema_change='fail',
    )
}}

select
    slv_quotes.symbol,
    slv_quotes.quote_ts,
    slv_quotes.session_date,
    slv_quotes.price,
    slv_quotes.price_change,
    slv_quotes.price_change_pct,
    slv_quotes.day_high,
    slv_quotes.day_low,
    slv_quotes.day_open,
    slv_quotes.prev_close,
    cast(
        coalesce(
            dim_date.is_session
            and slv_quotes.quote_ts >= dim_date.session_open_utc
            and slv_quotes.quote_ts <= dim_date.session_close_utc,
            false
        ) as boolean
    ) as is_regular_session,
    slv_quotes.data_source,
    slv_quotes.fetched_at,
    slv_quotes.loaded_at
from {{ ref('slv_quotes') }} as slv_quotes
left join {{ ref('dim_date') }} as dim_date
    on slv_quotes.session_date = dim_date.date_day
where {{ new_since_last_run('slv_quotes.loaded_at') }}
