"""The dashboard stage: the Streamlit app over the warehouse (DuckDB snapshot or Snowflake)."""
