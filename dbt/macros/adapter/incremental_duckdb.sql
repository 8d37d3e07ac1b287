{#-
  DuckDB's incremental materialization (dbt picks materializations by adapter; Snowflake keeps
  dbt-snowflake's). The first build, full refreshes, Python models, other strategies and the options
  not handled here (merge clauses, sql_header, grants, persist_docs, MotherDuck, DuckLake) run
  dbt-duckdb's own materialization unchanged.

  The steady state, merging what arrived since the last run into an existing table, is what every
  run after a load does, and there most of the time is the materialization's own, not the data's: a
  few new rows per model, or none. dbt-duckdb's path takes about 30 ms a model before any data moves:
  two DESCRIBE round trips for the contract, two for on_schema_change, and a merge rendered through a
  dozen option-validating macros. This one makes the same checks in the round trip that stages the
  new rows:
  - the new rows go to a temporary table, as in dbt-duckdb (its exact row count lets DuckDB plan the
    upsert with the new rows as the build side; a view hides it, and DuckDB can build on the target);
  - the same round trip describes the new rows, the target and (enforced contract) the contract's
    columns, and counts the new rows. When the columns agree, nothing else is checked. When they do
    not, dbt's own checks take over and decide as they always do: get_assert_columns_equivalent
    raises the contract error, process_schema_changes fails or syncs per on_schema_change;
  - no new rows: nothing to write, no transaction; otherwise the upsert (stockpipe_upsert_sql).
-#}
{% materialization incremental, adapter='duckdb', supported_languages=['sql', 'python'] %}
    {%- set existing_relation = load_cached_relation(this) -%}
    {%- if not stockpipe_lean_merge_applies(existing_relation) -%}
        {{ return(dbt.materialization_incremental_duckdb()) }}
    {%- endif -%}

    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set new_rows = make_temp_relation(target_relation) -%}
    {%- set conditions = stockpipe_merge_conditions(
        config.get('unique_key'), config.get('predicates', none) or config.get('incremental_predicates', none)
    ) -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- set staged = stockpipe_stage_and_check(new_rows, existing_relation) -%}

    {#- Nothing arrived (and no hook opened a transaction): there is nothing to merge or commit. -#}
    {%- if staged.rows > 0 or pre_hooks or post_hooks %}
        {% call statement('main') %}
            {{ stockpipe_upsert_sql(target_relation, new_rows, conditions, staged.same_columns) }}
        {% endcall %}
        {{ run_hooks(post_hooks, inside_transaction=True) }}
        {% do adapter.commit() %}
    {%- else %}
        {% call noop_statement('main', 'OK') %}-- nothing arrived: nothing to merge{% endcall %}
    {%- endif %}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}

{#- Whether the steady-state merge above covers this run; anything else is dbt-duckdb's. -#}
{% macro stockpipe_lean_merge_applies(existing_relation) %}
    {%- set merge_options = [
        'merge_on_using_columns', 'merge_update_condition', 'merge_insert_condition', 'merge_update_columns',
        'merge_exclude_columns', 'merge_update_set_expressions', 'merge_returning_columns', 'merge_clauses',
    ] -%}
    {%- set applies = (
        existing_relation is not none
        and not existing_relation.is_view
        and not should_full_refresh()
        and model['language'] == 'sql'
        and config.get('incremental_strategy') == 'merge'
        and config.get('unique_key')
        and not config.get('sql_header')
        and not config.get('grants')
        and not config.get('persist_docs')
        and not adapter.is_motherduck()
        and not adapter.is_ducklake(this)
        and not adapter.disable_transactions()
    ) -%}
    {%- for option in merge_options if config.get(option) -%}
        {%- set applies = false -%}
    {%- endfor -%}
    {{ return(applies) }}
{% endmacro %}

{#-
  Stages the new rows in a temporary table and checks the contract and on_schema_change, in one round
  trip: the statement that creates the table is followed by a query for the columns (name and DuckDB
  type) of the new rows, of the target and of the contract, and for the number of new rows. Any
  difference is handed to dbt's own checks, which raise or sync exactly as they do in dbt's
  materializations. Returns the number of new rows, and whether they have the target's columns.
-#}
{% macro stockpipe_stage_and_check(new_rows, target_relation) %}
    {%- set contract = config.get('contract').enforced -%}
    {%- set on_schema_change = incremental_validate_on_schema_change(
        config.get('on_schema_change'), default='ignore'
    ) -%}
    {%- if contract and not model['columns'] -%}
        {{ get_assert_columns_equivalent(compiled_code) }}
    {%- endif -%}
    {%- set sides = [
        "select 'rows' as side, cast(count(*) as varchar) as column_name, null as column_type from " ~ new_rows,
        "select 'new', column_name, column_type from (describe " ~ new_rows ~ ")",
        "select 'target', column_name, column_type from (describe " ~ target_relation ~ ")",
    ] -%}
    {%- if contract -%}
        {%- do sides.append(
            "select 'contract', column_name, column_type from (describe ("
            ~ get_empty_schema_sql(model['columns']) ~ "))"
        ) -%}
    {%- endif -%}
    {%- set described = run_query(
        'create temporary table ' ~ new_rows ~ ' as (\n' ~ compiled_code ~ '\n);\n' ~ sides | join('\nunion all\n')
    ) -%}
    {%- set columns = {'rows': {}, 'new': {}, 'target': {}, 'contract': {}} -%}
    {%- for side, name, data_type in described.rows -%}
        {%- do columns[side].update({name: data_type}) -%}
    {%- endfor -%}
    {%- if contract and columns['contract'] != columns['new'] -%}
        {{ get_assert_columns_equivalent(compiled_code) }}
    {%- endif -%}
    {%- if on_schema_change != 'ignore' and columns['new'] != columns['target'] -%}
        {%- do process_schema_changes(on_schema_change, new_rows, target_relation) -%}
    {%- endif -%}
    {%- set staged = {
        'rows': columns['rows'].keys() | map('int') | first,
        'same_columns': columns['new'] == columns['target'],
    } -%}
    {{ return(staged) }}
{% endmacro %}

{#- The MERGE's match: unique_key's columns, then the incremental_predicates. -#}
{% macro stockpipe_merge_conditions(unique_key, predicates) %}
    {%- set conditions = [] -%}
    {%- for key in ([unique_key] if unique_key is string else unique_key) -%}
        {%- do conditions.append('DBT_INTERNAL_SOURCE.' ~ key ~ ' = DBT_INTERNAL_DEST.' ~ key) -%}
    {%- endfor -%}
    {%- do conditions.extend([predicates] if predicates is string else predicates or []) -%}
    {{ return(conditions) }}
{% endmacro %}

{#-
  The new rows replace the target's rows with the same unique_key (plus incremental_predicates).
  With the target's columns, that is a DELETE of those keys and an INSERT BY NAME, in the model's
  transaction: what MERGE ... UPDATE / INSERT BY NAME leaves for new rows that are unique on the key
  (every model deduplicates them on it, and tests it unique), in a third of DuckDB's MERGE time for
  tens of thousands of rows. When the target has other columns too (on_schema_change other than
  fail), a MERGE, which keeps their values.
-#}
{% macro stockpipe_upsert_sql(target, new_rows, conditions, same_columns) %}
    {%- if same_columns %}
        delete from {{ target }} as DBT_INTERNAL_DEST
        using {{ new_rows }} as DBT_INTERNAL_SOURCE
        where ({{ conditions | join(') and (') }});
        insert into {{ target }} by name
        select * from {{ new_rows }}
    {%- else %}
        merge into {{ target }} as DBT_INTERNAL_DEST
        using {{ new_rows }} as DBT_INTERNAL_SOURCE
        on ({{ conditions | join(') and (') }})
        when matched then update by name
        when not matched then insert by name
    {%- endif %}
{% endmacro %}
