{#-
  DuckDB's view materialization (dbt picks materializations by adapter; Snowflake keeps dbt's). A
  view is rebuilt on every run although only its SQL matters, and dbt's materialization does it in
  eight round trips (two DESCRIBEs for the contract, create under a temporary name, two renames,
  commit, drop of the old one). DuckDB replaces a view atomically in its transaction, so an existing
  view is replaced in one round trip that also describes the new view's columns and the contract's:
  when they differ, dbt's own get_assert_columns_equivalent raises the contract error and the
  transaction, with the old view, is rolled back. The first build, a table in the view's place and
  the options not handled here (sql_header, grants, persist_docs) go to dbt's materialization.
-#}
{% materialization view, adapter='duckdb' %}
    {%- set existing_relation = load_cached_relation(this) -%}
    {%- if existing_relation is none or not existing_relation.is_view
        or config.get('sql_header') or config.get('grants') or config.get('persist_docs') -%}
        {{ return(dbt.materialization_view_default()) }}
    {%- endif -%}
    {%- set target_relation = this.incorporate(type='view') -%}
    {%- set contract = config.get('contract').enforced -%}
    {%- if contract and not model['columns'] -%}
        {{ get_assert_columns_equivalent(sql) }}
    {%- endif -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {% call statement('main', fetch_result=contract) %}
        {{ stockpipe_replace_view_sql(target_relation, sql, contract) }}
    {% endcall %}
    {%- if contract -%}
        {%- set columns = {'view': {}, 'contract': {}} -%}
        {%- for side, name, data_type in load_result('main').table.rows -%}
            {%- do columns[side].update({name: data_type}) -%}
        {%- endfor -%}
        {%- if columns['view'] != columns['contract'] -%}
            {{ get_assert_columns_equivalent(sql) }}
        {%- endif -%}
    {%- endif -%}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {% do adapter.commit() %}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}

{#- CREATE OR REPLACE VIEW, then (enforced contract) the view's columns and the contract's. -#}
{% macro stockpipe_replace_view_sql(relation, sql, contract) %}
    {%- if contract %}
        create or replace view {{ relation }} as (
            {{ sql }}
        );
        select
            'view' as side,
            column_name,
            column_type
        from (describe {{ relation }})
        union all
        select
            'contract' as side,
            column_name,
            column_type
        from (describe ({{ get_empty_schema_sql(model['columns']) }}))
    {%- else %}
        create or replace view {{ relation }} as (
            {{ sql }}
        )
    {%- endif %}
{% endmacro %}
