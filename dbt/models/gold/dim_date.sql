{#-
  Incremental so that a run rebuilds it only when the calendar seed changed (a regenerated seed with
  a new ad-hoc closure, another year): then every day is recomputed, because session numbers and
  previous/next sessions of other days move too; otherwise the run merges nothing, and the check
  comes first so that nothing else is computed.
-#}
{{
    config(
        materialized='incremental',
        unique_key='date_day',
        incremental_strategy='merge',
        on_schema_change='fail',
    )
}}

with seed_days as (
    select
        cast(nyse_sessions.date_day as date) as date_day,
        cast(nyse_sessions.is_session as boolean) as is_session,
        cast(nyse_sessions.is_early_close as boolean) as is_early_close,
        cast(nyse_sessions.session_open_utc as timestamptz) as session_open_utc,
        cast(nyse_sessions.session_close_utc as timestamptz) as session_close_utc
    from {{ ref('nyse_sessions') }} as nyse_sessions
),

{% if is_incremental() %}
    seed_changed as (
        select count(*) > 0 as any_change
        from seed_days
        left join {{ this }} as current_days
            on
                seed_days.date_day = current_days.date_day
                and seed_days.is_session = current_days.is_session
                and seed_days.is_early_close = current_days.is_early_close
                and coalesce(
                    seed_days.session_open_utc = current_days.session_open_utc, seed_days.session_open_utc is null
                )
                and coalesce(
                    seed_days.session_close_utc = current_days.session_close_utc, seed_days.session_close_utc is null
                )
        where current_days.date_day is null
    ),

    days as (
        select seed_days.*
        from seed_days
        where (select seed_changed.any_change from seed_changed)
    ),
{% else %}
    days as (
        select seed_days.*
        from seed_days
    ),
{% endif %}

numbered as (
    select
        days.date_day,
        days.is_session,
        days.is_early_close,
        days.session_open_utc,
        days.session_close_utc,
        case
            when days.is_session
                then sum(case when days.is_session then 1 else 0 end) over (
                    order by days.date_day rows between unbounded preceding and current row
                )
        end as session_index,
        max(case when days.is_session then days.date_day end) over (
            order by days.date_day rows between unbounded preceding and 1 preceding
        ) as previous_session_date,
        min(case when days.is_session then days.date_day end) over (
            order by days.date_day rows between 1 following and unbounded following
        ) as next_session_date
    from days
),

year_ends as (
    select
        extract(year from days.date_day) as year_number,
        max(days.date_day) as last_session_date
    from days
    where days.is_session
    group by extract(year from days.date_day)
)

select
    numbered.date_day,
    cast(extract(year from numbered.date_day) as integer) as year_number,
    cast(extract(quarter from numbered.date_day) as integer) as quarter_number,
    cast(extract(month from numbered.date_day) as integer) as month_number,
    cast(extract(day from numbered.date_day) as integer) as day_of_month,
    cast({{ iso_day_of_week('numbered.date_day') }} as integer) as iso_day_of_week,
    cast({{ iso_day_of_week('numbered.date_day') }} >= 6 as boolean) as is_weekend,
    numbered.is_session,
    numbered.is_early_close,
    cast(not numbered.is_session and {{ iso_day_of_week('numbered.date_day') }} <= 5 as boolean) as is_holiday,
    numbered.session_open_utc,
    numbered.session_close_utc,
    cast(
        ({{ epoch_seconds('numbered.session_close_utc') }} - {{ epoch_seconds('numbered.session_open_utc') }}) / 60
        as integer
    ) as session_minutes,
    cast(numbered.session_index as bigint) as session_index,
    numbered.previous_session_date,
    numbered.next_session_date,
    year_ends.last_session_date as prior_year_last_session_date
from numbered
left join year_ends
    on extract(year from numbered.date_day) - 1 = year_ends.year_number
