{{ config(unique_key=['symbol', 'quote_ts']) }}

with arrived as (
    select *
    from {{ source('bronze', 'quotes') }}
    where
        {{ new_since_last_run('loaded_at') }}
        and {{ not_probe('symbol', 'source') }}
),

latest as (
    select *
    from arrived
    qualify row_number() over (
        partition by symbol, quote_ts
        order by loaded_at desc, fetched_at desc, kafka_offset desc
    ) = 1
)

select
    cast(latest.symbol as varchar) as symbol,
    latest.quote_ts,
    {{ ny_date('latest.quote_ts') }} as session_date,
    cast(latest.price as double) as price,
    cast(latest.change as double) as price_change,
    cast(latest.change_pct as double) as price_change_pct,
    cast(latest.day_high as double) as day_high,
    cast(latest.day_low as double) as day_low,
    cast(latest.day_open as double) as day_open,
    cast(latest.prev_close as double) as prev_close,
    cast(lower(latest.source) as varchar) as data_source,
    latest.fetched_at,
    cast(latest.kafka_partition as integer) as kafka_partition,
    cast(latest.kafka_offset as bigint) as kafka_offset,
    latest.source_file,
    latest.load_id,
    latest.loaded_at
from latest
