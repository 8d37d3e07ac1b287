{#- Layers live in fixed schemas (silver, gold, seeds) next to the loader's bronze, on both warehouses. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
