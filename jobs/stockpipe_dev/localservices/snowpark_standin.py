"""fakesnow's server as a stand-in for Snowflake when the client is Snowpark.

Over fakesnow's HTTP server, snowflake-connector-python logs in as it does against Snowflake, so a
Snowpark ``Session`` builds on it as on Snowflake (whereas over fakesnow's in-process connection it
fails at creation: Snowpark reads connector attributes that connection lacks). What remains are
spellings Snowflake accepts and fakesnow's parser does not, all of them Snowpark's:

- ``session.file.put`` quotes the stage location (``PUT 'file://...' '@db.schema.stage/path/'``);
- ``copy_into_table`` quotes copy options' values (``MATCH_BY_COLUMN_NAME = 'CASE_INSENSITIVE'``);
- ``Session.get_current_warehouse`` asks ``SELECT CURRENT_WAREHOUSE()``, which fakesnow lacks
  (answered with NULL: no warehouse, as a session without one);
- ``Session.close`` first cancels the session's queries (``SELECT SYSTEM$CANCEL_ALL_QUERIES(<id>)``),
  which fakesnow lacks (answered as nothing to cancel: fakesnow runs one statement at a time).

`snowpark_dialect()` rewrites those statements to the spelling fakesnow parses, on the server's side,
before fakesnow reads them; the statements the product sends are untouched on the wire.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_PUT = re.compile(r"^(\s*PUT\s+'[^']*'\s+)'(@[^']*)'", re.IGNORECASE)
_QUOTED_OPTION = re.compile(r"\b(MATCH_BY_COLUMN_NAME|ON_ERROR)\s*=\s*'([A-Z_]+)'", re.IGNORECASE)
_PUT_DEFAULTS = re.compile(r"\s(parallel\s*=\s*\d+|source_compression\s*=\s*'AUTO_DETECT')", re.IGNORECASE)
_CURRENT_WAREHOUSE = re.compile(r"^\s*SELECT\s+CURRENT_WAREHOUSE\(\)\s*$", re.IGNORECASE)
_CANCEL_ALL = re.compile(r"^\s*SELECT\s+SYSTEM\$CANCEL_ALL_QUERIES\([^)]*\)\s*$", re.IGNORECASE)


def snowflake_to_fakesnow(sql: str) -> str:
    """The statement as fakesnow parses it (unchanged unless it is one of Snowpark's spellings above)."""
    sql = _PUT.sub(r"\1\2", sql)
    if re.match(r"^\s*PUT\s", sql, re.IGNORECASE):
        sql = _PUT_DEFAULTS.sub("", sql)
    sql = _QUOTED_OPTION.sub(lambda m: f"{m.group(1)} = {m.group(2).upper()}", sql)
    sql = _CANCEL_ALL.sub("SELECT 'nothing to cancel'", sql)
    return _CURRENT_WAREHOUSE.sub("SELECT NULL", sql)


@contextmanager
def snowpark_dialect() -> Iterator[None]:
    """fakesnow (its server and its cursors) reads Snowpark's spellings, for the duration.

    Enter it inside ``fakesnow.server()``: that call imports the ``fakesnow.server`` module (which then
    shadows the package's function of the same name), so the module is taken from there.
    """
    server = importlib.import_module("fakesnow.server")
    cursor = importlib.import_module("fakesnow.cursor")

    def rewriting(parse: Callable[..., Any]) -> Callable[..., Any]:
        def parse_one(sql: str, *args: Any, **kwargs: Any) -> Any:
            return parse(snowflake_to_fakesnow(sql), *args, **kwargs)

        return parse_one

    originals = {module: module.parse_one for module in (server, cursor)}
    try:
        for module, parse in originals.items():
            module.parse_one = rewriting(parse)  # type: ignore[attr-defined]
        yield
    finally:
        for module, parse in originals.items():
            module.parse_one = parse  # type: ignore[attr-defined]
