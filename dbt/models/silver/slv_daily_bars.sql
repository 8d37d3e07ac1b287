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
    cast(lower(latest.source) as varchar) as data_source,
    latest.fetched_at,
    latest.source_file,
    latest.load_id,
    latest.loaded_at
from latest
