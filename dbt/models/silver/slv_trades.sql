{{ config(unique_key='trade_id') }}

with arrived as (
    select *
    from {{ source('bronze', 'trades') }}
    where
        {{ new_since_last_run('loaded_at') }}
        and {{ not_probe('symbol', 'source') }}
),

keyed as (
    select
        arrived.*,
        {{ trade_id('arrived.symbol', 'arrived.trade_ts', 'arrived.price', 'arrived.size', 'arrived.seq') }} as trade_id
    from arrived
),

latest as (
    select *
    from keyed
    qualify row_number() over (
        partition by trade_id
        order by loaded_at desc, fetched_at desc, kafka_offset desc
    ) = 1
)

select
    cast(latest.trade_id as varchar) as trade_id,
    cast(latest.symbol as varchar) as symbol,
    latest.trade_ts,
    {{ ny_date('latest.trade_ts') }} as session_date,
    cast(latest.price as double) as price,
    cast(latest.size as double) as size,
    cast(latest.seq as bigint) as seq,
    cast({{ list_to_string('latest.conditions') }} as varchar) as conditions,
    cast(lower(latest.source) as varchar) as data_source,
    latest.fetched_at,
    cast(latest.kafka_partition as integer) as kafka_partition,
    cast(latest.kafka_offset as bigint) as kafka_offset,
    latest.source_file,
    latest.load_id,
    latest.loaded_at
from latest
