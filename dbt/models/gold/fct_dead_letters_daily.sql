{#- Incremental: the days that received dead letters since the last run are recounted whole. -#}
{{
    config(
        materialized='incremental',
        unique_key=['detected_date', 'source_topic', 'reason_kind'],
        incremental_strategy='merge',
        on_schema_change='fail',
    )
}}

with touched as (
    select distinct slv_dead_letters.detected_date
    from {{ ref('slv_dead_letters') }} as slv_dead_letters
    where {{ new_since_last_run('slv_dead_letters.loaded_at') }}
)

select
    slv_dead_letters.detected_date,
    slv_dead_letters.source_topic,
    slv_dead_letters.reason_kind,
    cast(count(*) as bigint) as dead_letters,
    min(slv_dead_letters.detected_at) as first_detected_at,
    max(slv_dead_letters.detected_at) as last_detected_at,
    max(slv_dead_letters.loaded_at) as loaded_at
from {{ ref('slv_dead_letters') }} as slv_dead_letters
inner join touched
    on slv_dead_letters.detected_date = touched.detected_date
group by slv_dead_letters.detected_date, slv_dead_letters.source_topic, slv_dead_letters.reason_kind
