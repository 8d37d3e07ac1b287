{#-
  `helm test`'s probe (stockpipe probe: symbol PROBE, source probe) proves the real-time path into the
  lake and bronze; it is no market data, so silver (and all built on it) leaves it out.
-#}
{% macro not_probe(symbol, source=none) -%}
    {%- set probe_source = "'" ~ var("probe_source") ~ "'" -%}
    {%- set by_source = "" if source is none else " and lower(coalesce(" ~ source ~ ", '')) <> " ~ probe_source -%}
    ({{ symbol }} <> '{{ var("probe_symbol") }}'{{ by_source }})
{%- endmacro %}
