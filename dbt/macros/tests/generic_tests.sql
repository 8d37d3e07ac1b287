{#- Generic data tests of the project (the dbt hub is out of reach, so no dbt_utils). -#}

{#- Every value is strictly positive (prices). Nulls are not_null's business. -#}
{% test positive(model, column_name) %}
    select {{ column_name }} as bad_value
    from {{ model }}
    where {{ column_name }} <= 0
{% endtest %}

{#- Every value lies in [min_value, max_value]. -#}
{% test value_between(model, column_name, min_value, max_value) %}
    select {{ column_name }} as bad_value
    from {{ model }}
    where {{ column_name }} < {{ min_value }} or {{ column_name }} > {{ max_value }}
{% endtest %}

{#- A bar is consistent: low <= open, close <= high, and low <= high. -#}
{% test ohlc_consistent(model, open, high, low, close) %}
    select *
    from {{ model }}
    where
        not (
            {{ low }} <= {{ high }}
            and {{ low }} <= {{ open }} and {{ open }} <= {{ high }}
            and {{ low }} <= {{ close }} and {{ close }} <= {{ high }}
        )
{% endtest %}

{#- One row per combination of the columns (a composite key). -#}
{% test unique_combination(model, columns) %}
    select {{ columns | join(', ') }}, count(*) as n_rows
    from {{ model }}
    group by {{ columns | join(', ') }}
    having count(*) > 1
{% endtest %}

{#- The date is an NYSE session in dim_date. -#}
{% test is_trading_session(model, column_name) %}
    select m.{{ column_name }} as bad_date
    from {{ model }} as m
    left join {{ ref('dim_date') }} as d on m.{{ column_name }} = d.date_day
    where m.{{ column_name }} is not null and (d.is_session is null or not d.is_session)
{% endtest %}

{#- No row of `helm test`'s probe (symbol var('probe_symbol')). -#}
{% test not_probe(model, column_name) %}
    select {{ column_name }} as probe_symbol
    from {{ model }}
    where not {{ not_probe(column_name) }}
{% endtest %}
