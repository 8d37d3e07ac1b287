{#-
  Freshness measured on the NYSE clock (the nyse_sessions seed), so that nights, weekends, holidays
  and early closes never count as data being late.
-#}

{#- Open-market seconds between two instants: the overlap of [since, until] with each session. -#}
{% macro market_seconds_between(since, until, sessions) -%}
    coalesce(sum(
        case
            when {{ sessions }}.session_close_utc > {{ since }} and {{ sessions }}.session_open_utc < {{ until }}
                then
                    {{ epoch_seconds('least(' ~ sessions ~ '.session_close_utc, ' ~ until ~ ')') }}
                    - {{ epoch_seconds('greatest(' ~ sessions ~ '.session_open_utc, ' ~ since ~ ')') }}
            else 0
        end
    ), 0)
{%- endmacro %}

{#-
  For `dbt source freshness` (loaded_at_query): a stream source's newest event, moved forward by the
  closed-market time since, so that dbt's age (now - this) is the open-market time the data is behind.
-#}
{% macro market_clock_loaded_at(relation, event_ts) -%}
    with newest as (
        select max({{ event_ts }}) as newest_ts from {{ relation }}
    ),

    behind as (
        select
            newest.newest_ts,
            {{ market_seconds_between('newest.newest_ts', as_of_timestamp(), 's') }} as market_seconds
        from newest
        left join {{ nyse_sessions_relation() }} as s
            on s.is_session and s.session_close_utc > newest.newest_ts
        group by newest.newest_ts
    )

    select
        case
            when newest_ts is null then cast('1970-01-01 00:00:00+00:00' as timestamptz)
            else {{ dbt.dateadd('second', '-1 * cast(market_seconds as bigint)', as_of_timestamp()) }}
        end as loaded_at
    from behind
{%- endmacro %}

{#-
  For `dbt source freshness` of daily bars: when the bar after the newest one is due (the close of
  the next session plus bar_grace_hours), so dbt's age is how long that bar is overdue (negative,
  i.e. fresh, until then).
-#}
{% macro next_bar_due_at(relation, date_column) -%}
    with newest as (
        select max({{ date_column }}) as newest_date from {{ relation }}
    )

    select
        coalesce(
            {{ dbt.dateadd('hour', var('bar_grace_hours'), 'min(s.session_close_utc)') }},
            cast('1970-01-01 00:00:00+00:00' as timestamptz)
        ) as loaded_at
    from newest
    left join {{ nyse_sessions_relation() }} as s
        on s.is_session and s.date_day > newest.newest_date
{%- endmacro %}

{#-
  The calendar seed's relation. loaded_at_query runs outside the DAG (a source cannot ref() a
  node), so the seed is found through the manifest instead.
-#}
{% macro nyse_sessions_relation() -%}
    {%- set node = graph.nodes.get('seed.stockpipe.nyse_sessions') -%}
    {{ return(api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias)) }}
{%- endmacro %}
