{#-
  Every difference between DuckDB and Snowflake lives here, behind adapter.dispatch.
  Timestamps are UTC instants (timestamptz: DuckDB TIMESTAMPTZ, Snowflake TIMESTAMP_TZ) everywhere.
-#}

{#- The New York calendar date of an instant: the trading day it belongs to. -#}
{% macro ny_date(ts) -%}
    {{ return(adapter.dispatch('ny_date', 'stockpipe')(ts)) }}
{%- endmacro %}

{% macro default__ny_date(ts) -%}
    cast(({{ ts }}) at time zone 'America/New_York' as date)
{%- endmacro %}

{% macro duckdb__ny_date(ts) -%}
    cast(timezone('America/New_York', {{ ts }}) as date)
{%- endmacro %}

{% macro snowflake__ny_date(ts) -%}
    to_date(convert_timezone('America/New_York', {{ ts }}))
{%- endmacro %}

{#- Seconds since the Unix epoch of an instant, as a double (independent of the session time zone). -#}
{% macro epoch_seconds(ts) -%}
    {{ return(adapter.dispatch('epoch_seconds', 'stockpipe')(ts)) }}
{%- endmacro %}

{% macro default__epoch_seconds(ts) -%}
    extract(epoch from {{ ts }})
{%- endmacro %}

{% macro duckdb__epoch_seconds(ts) -%}
    epoch({{ ts }})
{%- endmacro %}

{% macro snowflake__epoch_seconds(ts) -%}
    (date_part(epoch_microsecond, {{ ts }}) / 1e6)
{%- endmacro %}

{#- The current instant, or the `freshness_as_of` var when set (reproducible runs and tests). -#}
{% macro as_of_timestamp() -%}
    {%- set as_of = var('freshness_as_of', none) -%}
    {%- if as_of -%}
        cast('{{ as_of }}' as timestamptz)
    {%- else -%}
        {{ return(adapter.dispatch('utc_now', 'stockpipe')()) }}
    {%- endif -%}
{%- endmacro %}

{% macro default__utc_now() -%}
    current_timestamp
{%- endmacro %}

{% macro duckdb__utc_now() -%}
    get_current_timestamp()
{%- endmacro %}

{% macro snowflake__utc_now() -%}
    cast(current_timestamp() as timestamp_tz)
{%- endmacro %}

{#- ISO day of the week: Monday 1 .. Sunday 7. -#}
{% macro iso_day_of_week(day) -%}
    {{ return(adapter.dispatch('iso_day_of_week', 'stockpipe')(day)) }}
{%- endmacro %}

{% macro default__iso_day_of_week(day) -%}
    extract(isodow from {{ day }})
{%- endmacro %}

{% macro snowflake__iso_day_of_week(day) -%}
    dayofweekiso({{ day }})
{%- endmacro %}

{#- A list of strings (DuckDB VARCHAR[], Snowflake ARRAY) as one space-separated string. -#}
{% macro list_to_string(col) -%}
    {{ return(adapter.dispatch('list_to_string', 'stockpipe')(col)) }}
{%- endmacro %}

{% macro default__list_to_string(col) -%}
    array_to_string({{ col }}, ' ')
{%- endmacro %}

{#- A stable text key of a trade from its natural key (symbol, trade_ts, price, size, seq). -#}
{% macro trade_id(symbol, ts, price, size, seq) -%}
    {{ return(adapter.dispatch('trade_id', 'stockpipe')(symbol, ts, price, size, seq)) }}
{%- endmacro %}

{% macro default__trade_id(symbol, ts, price, size, seq) -%}
    md5(
        {{ symbol }} || '|' || cast({{ epoch_seconds(ts) }} * 1000000 as bigint)
        || '|' || cast({{ price }} as varchar) || '|' || cast({{ size }} as varchar)
        || '|' || cast({{ seq }} as varchar)
    )
{%- endmacro %}

{#- An instant moved by a number of hours. -#}
{% macro add_hours(ts, hours) -%}
    {{ return(adapter.dispatch('add_hours', 'stockpipe')(ts, hours)) }}
{%- endmacro %}

{% macro default__add_hours(ts, hours) -%}
    {{ dbt.dateadd('hour', hours, ts) }}
{%- endmacro %}
