{#-
  Incremental models read only the rows that arrived after their last run: a row's loaded_at
  (carried from bronze) is later than the newest one already in the model. coalesce() keeps an
  empty model incremental-safe (max() of nothing is null).
-#}
{% macro new_since_last_run(column='loaded_at') -%}
    {%- if is_incremental() -%}
        {{ column }} > (
            select coalesce(max(loaded_at), cast('1900-01-01 00:00:00+00:00' as timestamptz)) from {{ this }}
        )
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}
