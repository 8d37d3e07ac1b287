"""Fixtures shared by the integration packages.

fakesnow's server lives here, once per test session: ``fakesnow.server()`` imports its own
``fakesnow.server`` module, which replaces the package attribute of the same name, so a second
call in one process finds a module instead of the function.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def fakesnow_server() -> Iterator[dict[str, Any]]:
    """fakesnow's HTTP server, for snowflake-connector-python itself to talk to (connect kwargs).

    Its sessions share one in-memory instance: each test uses a database of its own.

    fakesnow emulates MERGE with a scratch table whose (empty) comment it records in a second DuckDB
    catalog; DuckDB refuses a transaction that writes two catalogs, so a MERGE inside BEGIN...COMMIT
    fails in fakesnow although Snowflake runs it. The fake's bookkeeping for that scratch table is
    skipped here; the loader's SQL is untouched.

    The product reaches Snowflake through Snowpark: snowpark_dialect() lets fakesnow read the spellings
    Snowpark sends (quoted stage locations and copy options) that Snowflake accepts and fakesnow's
    parser does not (stockpipe_dev.localservices.snowpark_standin).
    """
    import fakesnow
    from fakesnow import info_schema

    from stockpipe_dev.localservices.snowpark_standin import snowpark_dialect

    original = info_schema.insert_table_comment_sql

    def comment_sql(catalog: str, schema: str, table: str, comment: str) -> str:
        if table.upper() == "MERGE_CANDIDATES":
            return "SELECT 1"
        return original(catalog, schema, table, comment)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(info_schema, "insert_table_comment_sql", comment_sql)
        with fakesnow.server() as kwargs, snowpark_dialect():
            yield kwargs
