"""The daily bar contract: what batch history writes to raw/daily_bars and bronze reads."""

from __future__ import annotations

import pyarrow as pa

from stockpipe.contracts.messages import TIMESTAMP

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
]
DAILY_BAR_SCHEMA = pa.schema(_FIELDS)
