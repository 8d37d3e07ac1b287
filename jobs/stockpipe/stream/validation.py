# size: one checker, its screen and its bisection share the column layout; split, each half needs the other.
"""Checking messages against their contract, a batch at a time.

The hot path parses a whole batch of JSON values with Arrow's C++ reader into typed columns, then
checks values with vectorised compute. A batch that Arrow cannot parse is bisected until each bad
message stands alone, so acceptance is always Arrow's decision (the same bytes give the same verdict
whatever batch they arrive in: file boundaries downstream depend on it). The reason for a rejection
comes from a per-message look with orjson. A producer, which still holds the Python values it
encoded, can skip the parse when proves_clean() shows from those values that check() would accept.

Arrow's reader is C++ fed with untrusted bytes, so it only ever sees values screened for what
crashes it or breaks the one-value-one-row framing (found by experiment, each in a child process,
pyarrow 26): a JSON `null` first in a read kills the process (SIGSEGV); a blank value yields no row
and two objects in one value yield two, which would shift every later row onto another message's
offset. So every value handed to Arrow is valid UTF-8 without a BOM and starts with `{` after JSON
whitespace, and a read whose row count differs from its value count is refused (and bisected).
Timestamps are read as strings and cast afterwards, so that naive and date-only times, which the
JSON reader would take as UTC, are refused by name.
"""

from __future__ import annotations

import io
import operator
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any, TypeVar, cast

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from stockpipe.contracts.messages import (
    EARLIEST_EVENT,
    MAX_FUTURE_SKEW_S,
    SCHEMAS,
    TIMESTAMP,
    WATERMARK_V1,
    MessageSchema,
)
from stockpipe.contracts.watchlist import SYMBOL_PATTERN


def _bad_casts(strings: pa.Array, start: int, end: int) -> list[int]:
    """Rows in [start, end) whose string Arrow cannot cast to a timestamp, by bisection."""
    try:
        pc.cast(strings.slice(start, end - start), TIMESTAMP)
        return []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if end - start == 1:
            return [start]
    mid = (start + end) // 2
    return _bad_casts(strings, start, mid) + _bad_casts(strings, mid, end)


def _timestamp_reason(text: str | None, name: str) -> str:
    """Why a timestamp string was refused: a date only, no UTC offset, or not a timestamp at all."""
    try:
        parsed = datetime.fromisoformat(text or "")
    except ValueError:
        return f"bad_timestamp:{name}"
    if len((text or "").strip()) <= 10:
        return f"date_only:{name}"
    if parsed.tzinfo is None:
        return f"naive_timestamp:{name}"
    return f"bad_timestamp:{name}"


T = TypeVar("T")
# The Python types whose conversion to the contract's columns proves_clean() trusts (no bool: no field is one).
_PLAIN_KINDS = frozenset({str, int, float, list, type(None)})
_LIST_ITEM_KINDS = frozenset({str, type(None)})  # list fields are lists of strings (stricter otherwise)


def _converted_but_refused_as_json(arrow: pa.DataType) -> type | None:
    """The plain Python type Arrow converts into this column type though JSON's parse refuses it there."""
    if pa.types.is_integer(arrow):
        return float  # 2.0 becomes 2
    if pa.types.is_list(arrow):
        return str  # "ab" becomes ["a", "b"]
    return None


_FRAMING = bytes.maketrans(b"\r\n", b"  ")  # JSON whitespace; inside strings they must be escaped anyway
_JSON_SPACE = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"
_OPEN_BRACE = ord("{")
_JSON_KINDS = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string", list: "array"}


class FramingError(pa.ArrowInvalid):  # type: ignore[misc]
    """Arrow read a different number of rows than it was given values (blank or multi-object values)."""


def screen(value: bytes) -> str | None:
    """Why a value must not reach Arrow's JSON reader (None: it may). The slow path, for suspects only."""
    if value.startswith(_BOM):
        return "utf8_bom"
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return "not_utf8"
    body = value.lstrip(_JSON_SPACE)
    if not body:
        return "empty_message"
    if body[0] == _OPEN_BRACE:
        return None
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return "not_json"
    return f"not_object:{_JSON_KINDS.get(type(obj), 'other')}"


def _suspects(values: Sequence[bytes], sizes: np.ndarray, blob: bytes) -> np.ndarray:
    """Positions of values that may not be plain JSON objects: not `{` first, or not ASCII.

    Vectorised over the joined blob (values joined by one byte each): the common batch costs a
    numpy gather and one ASCII scan, not a Python loop.
    """
    n = len(values)
    starts = np.zeros(n, dtype=np.int64)
    if n > 1:
        np.cumsum(sizes[:-1] + 1, out=starts[1:])
    data = np.frombuffer(blob, dtype=np.uint8)
    first = data[np.minimum(starts, max(len(data) - 1, 0))] if len(data) else np.zeros(n, np.uint8)
    suspect = (first != _OPEN_BRACE) | (sizes == 0)
    if not blob.isascii():
        suspect |= np.fromiter(map(bytes.isascii, values), dtype=bool, count=n) == False  # noqa: E712
    return np.flatnonzero(suspect)


@dataclass
class Reject:
    reason: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None
    timestamp_ms: int


@dataclass
class Watermark:
    partition: int
    offset: int
    ts: datetime


@dataclass
class CheckedBatch:
    """Valid rows (message columns plus kafka_partition, kafka_offset), rejects, and watermarks."""

    valid: pa.Table
    rejects: list[Reject] = field(default_factory=list)
    watermarks: list[Watermark] = field(default_factory=list)


def pick(seq: Sequence[T], idx: np.ndarray) -> Sequence[T]:
    """The items of seq at idx (sorted, unique positions): seq itself when idx is all of it, else a list."""
    n = len(idx)
    if n == len(seq) and (n == 0 or (idx[0] == 0 and idx[-1] == n - 1)):
        return seq  # sorted and unique, so first and last pin it to 0..n-1
    if n <= 1:
        return [seq[int(i)] for i in idx]
    return list(operator.itemgetter(*idx.tolist())(seq))  # one C call, not a Python loop


class BatchValidator:
    def __init__(self, schema: MessageSchema) -> None:
        self.schema = schema
        # Timestamps are read as strings and cast by _typed(), which names naive and date-only ones.
        self.parse_schema = pa.schema(
            [pa.field(f.name, pa.string() if pa.types.is_timestamp(f.type) else f.type) for f in schema.arrow_schema()]
        ).append(pa.field("watermark_ts", TIMESTAMP))
        self._ts_fields = [f.name for f in schema.fields if pa.types.is_timestamp(f.arrow)]
        self.typed_schema = schema.arrow_schema().append(pa.field("watermark_ts", TIMESTAMP))
        self._parse_options = pj.ParseOptions(explicit_schema=self.parse_schema, unexpected_field_behavior="ignore")
        # One block, one thread: callers run batches side by side on threads of their own (measured:
        # Arrow's own threads gain nothing here on 2 cores and compete with those).
        self._read_options = pj.ReadOptions(use_threads=False, block_size=1 << 26)
        self._fields = {f.name: f for f in schema.fields}
        self._proof_columns = self._columns()
        self._proof_getters = [operator.itemgetter(name) for name, _, _ in self._proof_columns]  # the faster way
        self._warm_up()

    def _columns(self) -> list[tuple[str, Any, pa.DataType]]:
        """(name, how to take it from a message, the type Python values convert to) for proves_clean()."""
        columns: list[tuple[str, Any, pa.DataType]] = [("schema", operator.itemgetter("schema"), pa.string())]
        for f in self.schema.fields:
            # A missing optional field is null on both paths; a missing required one is left to check().
            take = operator.itemgetter(f.name) if f.required else operator.methodcaller("get", f.name)
            columns.append((f.name, take, pa.string() if pa.types.is_timestamp(f.arrow) else f.arrow))
        return columns

    def _warm_up(self) -> None:
        """Pay Arrow's lazy initialisation (compute kernels, time zones: ~0.6 s) at start, not on the first poll."""
        self._check_values(*self._typed(self.parse_schema.empty_table()), [], np.zeros(0, np.int64))

    # -- parsing ---------------------------------------------------------------------------------
    def _parse(self, values: Sequence[bytes], blob: bytes | None = None) -> pa.Table:
        """Arrow's JSON reader on screened values, one per line; exactly one row per value, or FramingError."""
        if blob is None:
            blob = b"\n".join(values)
        if blob.count(b"\n") != len(values) - 1 or b"\r" in blob:
            blob = b"\n".join(v.translate(_FRAMING) for v in values)
        table = pj.read_json(io.BytesIO(blob), read_options=self._read_options, parse_options=self._parse_options)
        if table.num_rows != len(values):
            raise FramingError(f"{table.num_rows} rows from {len(values)} values")
        return table

    def _parse_bisect(
        self,
        values: Sequence[bytes],
        idx: np.ndarray,
        out: list[tuple[np.ndarray, pa.Table]],
        bad: list[tuple[int, str]],
        blob: bytes | None = None,
    ) -> None:
        """Parse values at idx (screened: see screen()); a batch Arrow refuses is split in two."""
        try:
            out.append((idx, self._parse(pick(values, idx), blob)))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            if len(idx) == 1:
                at = int(idx[0])
                bad.append(
                    (at, "not_one_object" if isinstance(exc, FramingError) else self.explain(values[at], str(exc)))
                )
                return
            mid = len(idx) // 2
            self._parse_bisect(values, idx[:mid], out, bad)
            self._parse_bisect(values, idx[mid:], out, bad)

    def explain(self, value: bytes, arrow_error: str) -> str:
        """Why Arrow refused one message, in the contract's words."""
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError:
            return "not_json"
        if not isinstance(obj, dict):
            return f"not_object:{_JSON_KINDS.get(type(obj), 'other')}"
        for name, spec in self._fields.items():
            v = obj.get(name)
            if v is None:
                continue
            if pa.types.is_timestamp(spec.arrow):
                if not isinstance(v, str):
                    return f"wrong_type:{name}"
            elif pa.types.is_floating(spec.arrow) or pa.types.is_integer(spec.arrow):
                if isinstance(v, bool) or not isinstance(v, int | float):
                    return f"wrong_type:{name}"
                if pa.types.is_integer(spec.arrow) and not isinstance(v, int):
                    return f"wrong_type:{name}"
                if pa.types.is_integer(spec.arrow) and not -(2**63) <= v < 2**63:
                    return f"out_of_range:{name}"
            elif pa.types.is_list(spec.arrow):
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    return f"wrong_type:{name}"
            elif not isinstance(v, str):
                return f"wrong_type:{name}"
        if not isinstance(obj.get("schema", ""), str):
            return "wrong_type:schema"
        return f"unparseable:{arrow_error.splitlines()[0][:120]}"

    # -- proving a batch clean from its Python values ---------------------------------------------
    def proves_clean(
        self,
        messages: Sequence[Any],
        values: Sequence[bytes],
        keys: Sequence[bytes | None],
        now_ms: int | None = None,
    ) -> bool:
        """True only when check() on `values` (the messages' JSON encodings) would accept every one of them.

        For a producer, which holds the Python values it encoded: converting those to typed columns
        costs about half of parsing the bytes back (measured on quotes). The conversion is trusted
        only where it gives the values Arrow would parse from the JSON, and is stricter everywhere
        else (bools, which Arrow would take as numbers here, floats in integer fields, strings in
        list fields, non-finite floats, which JSON makes null, and anything but str, int, float,
        list and None). False says nothing: check() decides, so verdicts and reasons are check()'s.
        now_ms stands for the Kafka timestamp the messages will get (the wall clock when queued).
        """
        if not messages:
            return True
        if max(map(len, values)) > self.schema.max_bytes:
            return False
        try:
            try:
                columns = [list(map(get, messages)) for get in self._proof_getters]
            except KeyError:  # an optional field missing, which it may be (taken as null)
                columns = [list(map(take, messages)) for _, take, _ in self._proof_columns]
        except (KeyError, TypeError, AttributeError):  # a required field missing, or not all dicts
            return False
        kinds = set(map(type, chain.from_iterable(columns)))
        if not kinds <= _PLAIN_KINDS:
            return False
        arrays: list[pa.Array] = []
        try:
            for column, (_, _, arrow) in zip(columns, self._proof_columns, strict=True):
                lenient = _converted_but_refused_as_json(arrow)
                if lenient in kinds and lenient in set(map(type, column)):
                    return False
                if (
                    pa.types.is_list(arrow)
                    and not set(map(type, chain.from_iterable(filter(None, column)))) <= _LIST_ITEM_KINDS
                ):
                    return False  # other items: Arrow takes bytes as strings, where JSON gets base64
                arrays.append(pa.array(column, arrow))
            for i, f in enumerate(self.schema.fields, start=1):
                if pa.types.is_floating(f.arrow) and not pc.all(pc.is_finite(arrays[i]), min_count=0).as_py():
                    return False
        except (TypeError, OverflowError, pa.ArrowInvalid, pa.ArrowTypeError):
            return False
        arrays.append(pa.nulls(len(messages), TIMESTAMP))  # watermark_ts
        typed, ts_reasons = self._typed(pa.Table.from_arrays(arrays, schema=self.parse_schema))
        if ts_reasons:
            return False
        stamp = int(time.time() * 1000) if now_ms is None else now_ms
        return not self._check_values(typed, {}, keys, np.full(len(messages), stamp, dtype=np.int64))

    # -- checking ---------------------------------------------------------------------------------
    def check(
        self,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None],
        partitions: np.ndarray,
        offsets: np.ndarray,
        timestamps_ms: np.ndarray,
        rows: bool = True,
    ) -> CheckedBatch:
        """Check a batch's values against the contract; a batch Arrow refused is bisected to its bad messages.

        timestamps_ms are the Kafka records' own timestamps (<= 0: none), against which event and fetch
        times must be plausible. rows=False leaves CheckedBatch.valid empty, for a caller that only
        needs the verdicts.
        """
        n = len(values)
        reasons: list[str | None] = [None] * n
        # No None left (a tombstone is an empty message), without a copy when there is none.
        vals = [v if v is not None else b"" for v in values] if None in values else cast(Sequence[bytes], values)
        sizes = np.fromiter(map(len, vals), dtype=np.int64, count=n)
        unparseable = (sizes == 0) | (sizes > self.schema.max_bytes)
        for at in np.flatnonzero(unparseable).tolist():
            reasons[at] = "empty_message" if sizes[at] == 0 else "oversized"
        blob = b"\n".join(vals)
        for at in _suspects(vals, sizes, blob).tolist():
            if not unparseable[at] and (why := screen(vals[at])) is not None:
                reasons[at] = why  # never handed to Arrow: it could crash it
                unparseable[at] = True
        clean = not unparseable.any()
        parseable = np.arange(n, dtype=np.int64) if clean else np.flatnonzero(~unparseable)
        pieces: list[tuple[np.ndarray, pa.Table]] = []
        bad: list[tuple[int, str]] = []
        if len(parseable):
            self._parse_bisect(vals, parseable, pieces, bad, blob if clean else None)
        for i, reason in bad:
            reasons[i] = reason
        if pieces:
            idx = np.concatenate([p[0] for p in pieces])
            table = pa.concat_tables([p[1] for p in pieces]) if len(pieces) > 1 else pieces[0][1]
        else:
            idx = np.zeros(0, dtype=np.int64)
            table = self.parse_schema.empty_table()
        table, ts_reasons = self._typed(table)
        stamps = np.asarray(timestamps_ms, dtype=np.int64)
        row_reasons = self._check_values(table, ts_reasons, pick(keys, idx), stamps[idx] if len(stamps) else stamps)
        watermarks: list[Watermark] = []
        is_mark = np.zeros(len(idx), dtype=bool)
        if len(idx):
            is_mark = pc.fill_null(pc.equal(table["schema"], WATERMARK_V1), False).to_numpy(zero_copy_only=False)
            marks_ts = table["watermark_ts"]
            for mark in np.flatnonzero(is_mark):
                ts = marks_ts[int(mark)].as_py()
                at = int(idx[mark])
                if ts is None:
                    reasons[at] = "missing_field:watermark_ts"
                else:
                    watermarks.append(Watermark(int(partitions[at]), int(offsets[at]), ts))
            for row, reason in row_reasons.items():
                if not is_mark[row]:
                    reasons[int(idx[row])] = reason
        if rows:
            ok_rows = np.ones(len(idx), dtype=bool)
            ok_rows[list(row_reasons)] = False
            ok_rows &= ~is_mark
            valid = table.filter(pa.array(ok_rows)).drop_columns(["schema", "watermark_ts"])
            valid = valid.append_column("kafka_partition", pa.array(partitions[idx[ok_rows]], pa.int32()))
            valid = valid.append_column("kafka_offset", pa.array(offsets[idx[ok_rows]], pa.int64()))
            valid = valid.cast(self.schema.lake_schema())
        else:
            valid = self.schema.lake_schema().empty_table()
        rejects = [
            Reject(r, int(partitions[i]), int(offsets[i]), vals[i], keys[i], int(timestamps_ms[i]))
            for i, r in enumerate(reasons)
            if r is not None
        ]
        return CheckedBatch(valid=valid, rejects=rejects, watermarks=watermarks)

    def _typed(self, table: pa.Table) -> tuple[pa.Table, dict[int, str]]:
        """Timestamp strings cast to the contract's type; row -> reason for those that are not timestamps.

        The cast needs a UTC offset, so naive and date-only times fail here (the JSON reader would
        have taken them as UTC). A failing cast is bisected to its bad rows (rare), then named.
        """
        reasons: dict[int, str] = {}
        for name in self._ts_fields:
            at = table.schema.get_field_index(name)
            col = table.column(at)
            try:
                typed = pc.cast(col, TIMESTAMP)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                strings = col.combine_chunks()
                bad = _bad_casts(strings, 0, len(strings))
                for j in bad:
                    reasons.setdefault(j, _timestamp_reason(strings[j].as_py(), name))
                keep = np.ones(len(strings), dtype=bool)
                keep[bad] = False
                typed = pc.cast(pc.if_else(pa.array(keep), strings, pa.nulls(len(strings), pa.string())), TIMESTAMP)
            table = table.set_column(at, pa.field(name, TIMESTAMP), typed)
        return table, reasons

    def _check_values(
        self, table: pa.Table, ts_reasons: dict[int, str], keys: Sequence[bytes | None], stamps_ms: np.ndarray
    ) -> dict[int, str]:
        """Row index -> the first rule it breaks, for rows Arrow could parse."""
        rules = self._rules(table, keys, stamps_ms)
        # The usual batch breaks no rule: one combined test, and the rows are looked at only if it fails.
        broken = rules[0][0]
        for mask, _ in rules[1:]:
            broken = pc.or_kleene(broken, mask)
        found: dict[int, str] = {}
        if not ts_reasons and not pc.any(broken).as_py():  # nulls (a rule that does not apply): not broken
            return found
        for mask, reason in rules:
            for j in np.flatnonzero(pc.fill_null(mask, False).to_numpy(zero_copy_only=False)).tolist():
                found.setdefault(j, reason)
        for j, reason in ts_reasons.items():
            # A timestamp that is not one is named as such, unless the message is not of this contract at all.
            if found.get(j) not in ("missing_field:schema", "wrong_schema"):
                found[j] = reason
        schema_col = table["schema"]
        for j, reason in found.items():
            if reason == "wrong_schema":
                name = schema_col[j].as_py()
                found[j] = f"wrong_topic:{name}" if name in SCHEMAS else f"unknown_schema:{name}"[:80]
        return found

    def _rules(self, table: pa.Table, keys: Sequence[bytes | None], stamps_ms: np.ndarray) -> list[tuple[Any, str]]:
        """(mask of the rows that break it, reason) for every rule, in order of precedence."""
        schema_col = table["schema"]
        # A column without nulls breaks no missing_field rule: those masks are left out (fewer kernel calls).
        rules: list[tuple[Any, str]] = []
        if schema_col.null_count:
            rules.append((pc.is_null(schema_col), "missing_field:schema"))
        rules.append(
            (
                pc.and_(pc.not_equal(schema_col, self.schema.name), pc.not_equal(schema_col, WATERMARK_V1)),
                "wrong_schema",
            )
        )
        rules += [
            (pc.is_null(table[f.name]), f"missing_field:{f.name}")
            for f in self.schema.fields
            if f.required and table[f.name].null_count
        ]
        if "symbol" in self._fields:
            symbols = table["symbol"]
            rules.append((pc.invert(pc.match_substring_regex(symbols, SYMBOL_PATTERN)), "bad_symbol"))
            key_col = pa.array(keys, pa.binary())
            if key_col.null_count:
                rules.append((pc.is_null(key_col), "missing_key"))  # the key is the symbol: partitioning needs it
            mismatch = pc.and_(pc.is_valid(key_col), pc.not_equal(key_col, pc.cast(symbols, pa.binary())))
            rules.append((mismatch, "key_mismatch"))
        for f in self.schema.fields:
            col = table[f.name]
            if f.positive or f.non_negative:
                rules.append((pc.invert(pc.is_finite(col)), f"not_finite:{f.name}"))
            if f.positive:
                rules.append((pc.less_equal(col, 0), f"non_positive:{f.name}"))
            if f.non_negative:
                rules.append((pc.less(col, 0), f"negative:{f.name}"))
            if f.max_abs is not None:
                # An integer column compares with an integer: as a float, a value past 2**53 is an error
                # of Arrow's (the whole batch's check would fail), not this value's verdict.
                exact = pa.types.is_integer(col.type)
                limit = pa.scalar(int(f.max_abs), col.type) if exact else pa.scalar(f.max_abs, pa.float64())
                rules.append((pc.greater(pc.abs(col), limit), f"out_of_range:{f.name}"))
        event = table[self.schema.event_ts]
        earliest = pa.scalar(EARLIEST_EVENT, TIMESTAMP)
        skew = pa.scalar(MAX_FUTURE_SKEW_S * 1_000_000, pa.duration("us"))
        if "fetched_at" in table.column_names:
            fetched = table["fetched_at"]
            # Fetch time first: a wrong one would make every event-time verdict point at the wrong field.
            rules.append((pc.less(fetched, earliest), "ts_too_old:fetched_at"))
            if len(stamps_ms):
                # Against the Kafka record's own timestamp: the same verdict on every restart, unlike now().
                limit_us = stamps_ms * 1000 + MAX_FUTURE_SKEW_S * 1_000_000
                record_limit = pa.array(limit_us, TIMESTAMP, mask=stamps_ms <= 0)
                rules.append((pc.greater(fetched, record_limit), "ts_in_future:fetched_at"))
                rules.append((pc.greater(event, record_limit), f"ts_in_future:{self.schema.event_ts}"))
            rules.append((pc.greater(event, pc.add(fetched, skew)), f"ts_in_future:{self.schema.event_ts}"))
        rules.append((pc.less(event, earliest), f"ts_too_old:{self.schema.event_ts}"))
        if "day_low" in table.column_names:
            rules.append((pc.greater(table["day_low"], table["day_high"]), "inconsistent_range:day_low>day_high"))
        return rules
