{{ config(unique_key=['source_topic', 'source_partition', 'source_offset']) }}

with arrived as (
    select *
    from {{ source('bronze', 'dlq') }}
    where {{ new_since_last_run('loaded_at') }}
),

latest as (
    select *
    from arrived
    qualify row_number() over (
        partition by source_topic, source_partition, source_offset
        order by loaded_at desc, kafka_offset desc
    ) = 1
)

select
    cast(latest.source_topic as varchar) as source_topic,
    cast(latest.source_partition as bigint) as source_partition,
    cast(latest.source_offset as bigint) as source_offset,
    cast(latest.reason as varchar) as reason,
    cast(split_part(latest.reason, ':', 1) as varchar) as reason_kind,
    latest.detected_at,
    {{ ny_date('latest.detected_at') }} as detected_date,
    cast(latest.original_b64 as varchar) as original_b64,
    cast(latest.original_key as varchar) as original_key,
    latest.source_file,
    latest.load_id,
    latest.loaded_at
from latest
