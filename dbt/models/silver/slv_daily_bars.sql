{{ config(unique_key=['symbol', 'session_date']) }}

with arrived as (
    select *
    from {{ source('bronze', 'daily_bars') }}
    where {{ new_since_last_run('loaded_at') }}
),

latest as (
    select *
    from arrived
    qualify row_number() over (
        partition by symbol, date
        order by loaded_at desc, fetched_at desc
    ) = 1
)

select
    cast(latest.symbol as varchar) as symbol,
    cast(latest.date as date) as session_date,
    cast(latest.open as double) as open_price,
    cast(latest.high as double) as high_price,
    cast(latest.low as double) as low_price,
    cast(latest.close as double) as close_price,
    cast(latest.volume as bigint) as volume,
    -- The provider's adjusted bar, as of its fetch (reference only: gold derives its own from the actions).
    cast(latest.adj_open as double) as provider_adj_open,
    cast(latest.adj_high as double) as provider_adj_high,
    cast(latest.adj_low as double) as provider_adj_low,
    cast(latest.adj_close as double) as provider_adj_close,
    cast(latest.adj_volume as double) as provider_adj_volume,
    -- No adjustment data (Finnhub candles, bars loaded before it existed): no split, no dividend.
    cast(coalesce(latest.split_factor, 1) as double) as split_factor,
    cast(coalesce(latest.dividend_cash, 0) as double) as dividend_cash,
    cast(lower(latest.source) as varchar) as data_source,
    latest.fetched_at,
    latest.source_file,
    latest.load_id,
    latest.loaded_at
from latest
