"""The Kafka message contracts: quote.v1 and trade.v1 (value: JSON, UTF-8; key: the symbol).

This module is the one place the schemas live. The JSON Schema files under `contracts/jsonschema/`
are generated from it (`stockpipe contracts export`), the Arrow schemas used by the consumer's
fast path and by the lake are derived from it, and the checks run on both sides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from stockpipe.contracts.watchlist import SYMBOL_PATTERN

MAX_MESSAGE_BYTES = 16 * 1024
# Event times before this are not market data we can use; after now + this skew they are clock bugs.
EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
# Also the most an event or fetch time may lead the Kafka record's own timestamp (which the broker
# bounds, and which every restart sees the same, unlike the wall clock).
MAX_FUTURE_SKEW_S = 6 * 3600
# Magnitudes no US market has: the dearest share (BRK.A) trades below $1M, a day's volume below 1e10.
MAX_PRICE = 10_000_000.0

TIMESTAMP = pa.timestamp("us", tz="UTC")
# What a contract timestamp looks like: date, time and a UTC offset (Z or +hh:mm); no date-only, no naive.
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}(:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}(:?\d{2})?)$"


@dataclass(frozen=True)
class Field:
    name: str
    arrow: pa.DataType
    description: str
    required: bool = True
    positive: bool = False  # a price: finite and > 0
    non_negative: bool = False
    max_abs: float | None = None  # the largest magnitude a market can have: beyond it a value is a bug

    @property
    def json_types(self) -> tuple[str, ...]:
        if pa.types.is_timestamp(self.arrow):
            kinds: tuple[str, ...] = ("string",)
        elif pa.types.is_floating(self.arrow):
            kinds = ("number",)
        elif pa.types.is_integer(self.arrow):
            kinds = ("integer",)
        elif pa.types.is_list(self.arrow):
            kinds = ("array",)
        else:
            kinds = ("string",)
        return kinds if self.required else (*kinds, "null")


@dataclass(frozen=True)
class MessageSchema:
    name: str  # e.g. "quote.v1"
    dataset: str  # the lake dataset and the topic kind
    event_ts: str  # the source's event time field
    fields: tuple[Field, ...]
    description: str
    max_bytes: int = MAX_MESSAGE_BYTES

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def arrow_schema(self) -> pa.Schema:
        """The schema the consumer parses message values with (JSON `schema` included)."""
        return pa.schema([pa.field("schema", pa.string()), *(pa.field(f.name, f.arrow) for f in self.fields)])

    def lake_schema(self) -> pa.Schema:
        """Columns of the raw Parquet files: the message fields plus where each record came from."""
        return pa.schema(
            [
                *(pa.field(f.name, f.arrow, nullable=not f.required) for f in self.fields),
                pa.field("kafka_partition", pa.int32(), nullable=False),
                pa.field("kafka_offset", pa.int64(), nullable=False),
            ]
        )

    def json_schema(self) -> dict[str, Any]:
        props: dict[str, Any] = {"schema": {"const": self.name, "description": "schema name and version"}}
        for f in self.fields:
            prop: dict[str, Any] = {"type": list(f.json_types) if len(f.json_types) > 1 else f.json_types[0]}
            if pa.types.is_timestamp(f.arrow):
                prop["format"] = "date-time"
                # RFC 3339: a date and a time with a UTC offset; date-only and naive times are refused.
                prop["pattern"] = TIMESTAMP_PATTERN
            if f.name == "symbol":
                prop["pattern"] = SYMBOL_PATTERN
            if f.positive:
                prop["exclusiveMinimum"] = 0
            if f.non_negative:
                prop["minimum"] = 0
            if f.max_abs is not None:
                prop["maximum"] = f.max_abs
                if not (f.positive or f.non_negative):
                    prop["minimum"] = -f.max_abs
            if pa.types.is_list(f.arrow):
                prop["items"] = {"type": "string"}
            prop["description"] = f.description
            props[f.name] = prop
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://stockpipe.io/schemas/{self.name}.json",
            "title": self.name,
            "description": self.description,
            "type": "object",
            "required": ["schema", *(f.name for f in self.fields if f.required)],
            "properties": props,
        }


_COMMON = (Field("symbol", pa.string(), "US ticker, e.g. AAPL or BRK.B; also the Kafka key (required)"),)
_PROVENANCE = (
    Field("fetched_at", TIMESTAMP, "when the producer received it (UTC, ISO-8601)"),
    Field("source", pa.string(), "finnhub, finnhub_ws, synthetic or replay"),
)

QUOTE_V1 = MessageSchema(
    name="quote.v1",
    dataset="quotes",
    event_ts="quote_ts",
    description="A quote from Finnhub /quote (c d dp h l o pc t), under clear names.",
    fields=(
        *_COMMON,
        Field("quote_ts", TIMESTAMP, "Finnhub t: time of the last trade in the quote (UTC, ISO-8601)"),
        *_PROVENANCE,
        Field("price", pa.float64(), "Finnhub c: current price", positive=True, max_abs=MAX_PRICE),
        Field("change", pa.float64(), "Finnhub d: change from the previous close", required=False, max_abs=MAX_PRICE),
        Field(
            "change_pct",
            pa.float64(),
            "Finnhub dp: percent change from the previous close",
            required=False,
            max_abs=1_000_000.0,
        ),
        Field("day_high", pa.float64(), "Finnhub h: high of the day", positive=True, max_abs=MAX_PRICE),
        Field("day_low", pa.float64(), "Finnhub l: low of the day", positive=True, max_abs=MAX_PRICE),
        Field("day_open", pa.float64(), "Finnhub o: open of the day", positive=True, max_abs=MAX_PRICE),
        Field("prev_close", pa.float64(), "Finnhub pc: previous close", positive=True, max_abs=MAX_PRICE),
    ),
)

TRADE_V1 = MessageSchema(
    name="trade.v1",
    dataset="trades",
    event_ts="trade_ts",
    description="A trade from Finnhub's websocket (s p t v c).",
    fields=(
        *_COMMON,
        Field("trade_ts", TIMESTAMP, "Finnhub t: trade time (UTC, ISO-8601, millisecond precision)"),
        *_PROVENANCE,
        Field("price", pa.float64(), "Finnhub p: trade price", positive=True, max_abs=MAX_PRICE),
        Field(
            "size",
            pa.float64(),
            "Finnhub v: volume (shares; fractional for some venues)",
            non_negative=True,
            max_abs=1e10,
        ),
        Field(
            "seq",
            pa.int64(),
            "position among trades with the same symbol and time in one delivery",
            non_negative=True,
            max_abs=1e9,
        ),
        Field("conditions", pa.list_(pa.string()), "Finnhub c: trade conditions", required=False),
    ),
)

DLQ_V1 = MessageSchema(
    name="dlq.v1",
    dataset="dlq",
    event_ts="detected_at",
    description="A message that failed its contract: why, where it was, and its original bytes.",
    max_bytes=8 * 1024 * 1024,  # carries an original of up to the broker's limit, base64
    fields=(
        Field("reason", pa.string(), "why the message was rejected, e.g. missing_field:price"),
        Field("source_topic", pa.string(), "the topic the message was read from"),
        Field("source_partition", pa.int64(), "its partition", non_negative=True),
        Field("source_offset", pa.int64(), "its offset", non_negative=True),
        Field("original_b64", pa.string(), "the original value bytes, base64"),
        Field(
            "original_key",
            pa.string(),
            "the original key (UTF-8, replacement characters for bad bytes)",
            required=False,
        ),
        Field("detected_at", TIMESTAMP, "the Kafka timestamp of the original message (UTC)"),
    ),
)

# Control records that producers put in every partition to move record time forward (see the consumer).
WATERMARK_V1 = "watermark.v1"

SCHEMAS: dict[str, MessageSchema] = {s.name: s for s in (QUOTE_V1, TRADE_V1, DLQ_V1)}
BY_DATASET: dict[str, MessageSchema] = {s.dataset: s for s in SCHEMAS.values()}


def iso(ts: datetime) -> str:
    """UTC ISO-8601 with a Z, microseconds only when present (what the contract's timestamps look like)."""
    text = ts.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def quote_message(symbol: str, quote: Mapping[str, Any], fetched_at: datetime, source: str) -> dict[str, Any]:
    """Finnhub's /quote answer (c d dp h l o pc t) as a quote.v1 message."""
    return {
        "schema": QUOTE_V1.name,
        "symbol": symbol,
        "quote_ts": iso(datetime.fromtimestamp(int(quote["t"]), UTC)),
        "fetched_at": iso(fetched_at),
        "source": source,
        "price": quote["c"],
        "change": quote.get("d"),
        "change_pct": quote.get("dp"),
        "day_high": quote["h"],
        "day_low": quote["l"],
        "day_open": quote["o"],
        "prev_close": quote["pc"],
    }


def export_json_schemas(directory: Any) -> list[str]:
    """Write one JSON Schema file per message schema; returns the file names."""
    from pathlib import Path

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for schema in SCHEMAS.values():
        path = out / f"{schema.name}.json"
        path.write_text(json.dumps(schema.json_schema(), indent=2, sort_keys=True) + "\n")
        names.append(path.name)
    return names
