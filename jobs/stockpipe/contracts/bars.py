"""The daily bar contract: what batch history writes to raw/daily_bars and bronze reads.

A bar carries the session's raw (as traded) OHLCV, and, from providers that have them, the
provider's adjusted OHLCV and the session's corporate actions: `split_factor` (new shares per old
share on the ex-date, 1.0 on other days) and `dividend_cash` (cash per share going ex that day,
0.0 on other days). The adjustment columns are nullable: a provider without them (Finnhub candles)
leaves them null, and objects written before they existed read as null.

The provider's adjusted values are as of its fetch: a split announced later changes every earlier
adjusted value, which a stored bar cannot know. The warehouse therefore derives its adjusted
prices from `split_factor` and `dividend_cash` of the whole history (dbt `fct_daily_bars`), and
keeps the provider's `adj_*` for reference only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from stockpipe.contracts.messages import TIMESTAMP

ADJUSTMENT_COLUMNS: tuple[str, ...] = (
    "adj_open",
    "adj_high",
    "adj_low",
    "adj_close",
    "adj_volume",
    "split_factor",
    "dividend_cash",
)

_FIELDS: list[pa.Field] = [
    pa.field("symbol", pa.string(), nullable=False),
    pa.field("date", pa.date32(), nullable=False),  # the NYSE session
    pa.field("open", pa.float64(), nullable=False),
    pa.field("high", pa.float64(), nullable=False),
    pa.field("low", pa.float64(), nullable=False),
    pa.field("close", pa.float64(), nullable=False),
    pa.field("volume", pa.int64(), nullable=False),
    pa.field("source", pa.string(), nullable=False),  # finnhub, tiingo, synthetic
    pa.field("fetched_at", TIMESTAMP, nullable=False),
    # The provider's adjusted bar (as of its fetch) and the session's corporate actions; null when unknown.
    *(pa.field(name, pa.float64(), nullable=True) for name in ADJUSTMENT_COLUMNS),
]
DAILY_BAR_SCHEMA = pa.schema(_FIELDS)


def daily_bars_table(columns: Mapping[str, Sequence[Any] | pa.Array]) -> pa.Table:
    """A table of DAILY_BAR_SCHEMA; adjustment columns that `columns` does not hold are null."""
    missing = [f.name for f in DAILY_BAR_SCHEMA if not f.nullable and f.name not in columns]
    if missing:
        raise KeyError(f"daily bars need the columns {missing}")
    n = len(columns["symbol"])
    full = {f.name: columns[f.name] if f.name in columns else pa.nulls(n, f.type) for f in DAILY_BAR_SCHEMA}
    return pa.table(full, schema=DAILY_BAR_SCHEMA)
