"""Checking messages against their contract, a batch at a time.

The hot path parses a whole batch of JSON values with Arrow's C++ reader into typed columns, then
checks values with vectorised compute. A batch that Arrow cannot parse is bisected until each bad
message stands alone, so acceptance is always Arrow's decision (the same bytes give the same verdict
whatever batch they arrive in: file boundaries downstream depend on it). The reason for a rejection
comes from a per-message look with orjson. A producer, which still holds the Python values it
encoded, can skip the parse when proves_clean() shows from those values that check() would accept.
"""

from __future__ import annotations

import io
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any, Protocol, TypeVar, cast

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


class Indexed(Protocol):
    """Anything indexable by position: a list, an array, or a lazy view."""

    def __getitem__(self, i: int, /) -> Any: ...


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
        self.parse_schema = schema.arrow_schema().append(pa.field("watermark_ts", TIMESTAMP))
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
        self._check_values(self.parse_schema.empty_table(), [])

    # -- parsing ---------------------------------------------------------------------------------
    def _parse(self, values: Sequence[bytes]) -> pa.Table:
        """Arrow's JSON reader on the values, one per line."""
        blob = b"\n".join(values)
        if blob.count(b"\n") != len(values) - 1 or b"\r" in blob:
            blob = b"\n".join(v.translate(_FRAMING) for v in values)
        return pj.read_json(io.BytesIO(blob), read_options=self._read_options, parse_options=self._parse_options)

    def _parse_bisect(
        self,
        values: Sequence[bytes],
        idx: np.ndarray,
        out: list[tuple[np.ndarray, pa.Table]],
        bad: list[tuple[int, str]],
    ) -> None:
        """Parse values at idx; a batch Arrow refuses is split in two."""
        try:
            out.append((idx, self._parse(pick(values, idx))))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            if len(idx) == 1:
                bad.append((int(idx[0]), self.explain(values[int(idx[0])], str(exc))))
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
            return "not_object"
        for name, spec in self._fields.items():
            v = obj.get(name)
            if v is None:
                continue
            if pa.types.is_timestamp(spec.arrow):
                if not isinstance(v, str):
                    return f"wrong_type:{name}"
                try:
                    datetime.fromisoformat(v)
                except ValueError:
                    return f"bad_timestamp:{name}"
            elif pa.types.is_floating(spec.arrow) or pa.types.is_integer(spec.arrow):
                if isinstance(v, bool) or not isinstance(v, int | float):
                    return f"wrong_type:{name}"
                if pa.types.is_integer(spec.arrow) and not isinstance(v, int):
                    return f"wrong_type:{name}"
            elif pa.types.is_list(spec.arrow):
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    return f"wrong_type:{name}"
            elif not isinstance(v, str):
                return f"wrong_type:{name}"
        if not isinstance(obj.get("schema", ""), str):
            return "wrong_type:schema"
        return f"unparseable:{arrow_error.splitlines()[0][:120]}"

    # -- proving a batch clean from its Python values ---------------------------------------------
    def proves_clean(self, messages: Sequence[Any], values: Sequence[bytes], keys: Sequence[bytes | None]) -> bool:
        """True only when check() on `values` (the messages' JSON encodings) would accept every one of them.

        For a producer, which holds the Python values it encoded: converting those to typed columns
        costs about half of parsing the bytes back (measured on quotes). The conversion is trusted
        only where it gives the values Arrow would parse from the JSON, and is stricter everywhere
        else (bools, which Arrow would take as numbers here, floats in integer fields, strings in
        list fields, non-finite floats, which JSON makes null, and anything but str, int, float,
        list and None). False says nothing: check() decides, so verdicts and reasons are check()'s.
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
                if pa.types.is_timestamp(f.arrow):
                    arrays[i] = pc.cast(arrays[i], f.arrow)  # Arrow's ISO-8601 parser, as for JSON; a zone required
                elif pa.types.is_floating(f.arrow) and not pc.all(pc.is_finite(arrays[i]), min_count=0).as_py():
                    return False
        except (TypeError, OverflowError, pa.ArrowInvalid, pa.ArrowTypeError):
            return False
        arrays.append(pa.nulls(len(messages), TIMESTAMP))  # watermark_ts
        return not self._check_values(pa.Table.from_arrays(arrays, schema=self.parse_schema), keys)

    # -- checking ---------------------------------------------------------------------------------
    def check(
        self,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None],
        partitions: np.ndarray,
        offsets: np.ndarray,
        timestamps_ms: Indexed,
        rows: bool = True,
    ) -> CheckedBatch:
        """Check a batch's values against the contract; a batch Arrow refused is bisected to its bad messages.

        rows=False leaves CheckedBatch.valid empty, for a caller that only needs the verdicts.
        """
        n = len(values)
        reasons: list[str | None] = [None] * n
        # No None left (a tombstone is an empty message), without a copy when there is none.
        vals = [v if v is not None else b"" for v in values] if None in values else cast(Sequence[bytes], values)
        sizes = np.fromiter(map(len, vals), dtype=np.int64, count=n)
        unparseable = (sizes == 0) | (sizes > self.schema.max_bytes)
        for at in np.flatnonzero(unparseable).tolist():
            reasons[at] = "empty_message" if sizes[at] == 0 else "oversized"
        parseable = np.flatnonzero(~unparseable) if unparseable.any() else np.arange(n, dtype=np.int64)
        pieces: list[tuple[np.ndarray, pa.Table]] = []
        bad: list[tuple[int, str]] = []
        if len(parseable):
            self._parse_bisect(vals, parseable, pieces, bad)
        for i, reason in bad:
            reasons[i] = reason
        if pieces:
            idx = np.concatenate([p[0] for p in pieces])
            table = pa.concat_tables([p[1] for p in pieces]) if len(pieces) > 1 else pieces[0][1]
        else:
            idx = np.zeros(0, dtype=np.int64)
            table = self.parse_schema.empty_table()
        row_reasons = self._check_values(table, pick(keys, idx))
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

    def _check_values(self, table: pa.Table, keys: Sequence[bytes | None]) -> dict[int, str]:
        """Row index -> the first rule it breaks, for rows Arrow could parse."""
        rules = self._rules(table, keys)
        # The usual batch breaks no rule: one combined test, and the rows are looked at only if it fails.
        broken = rules[0][0]
        for mask, _ in rules[1:]:
            broken = pc.or_kleene(broken, mask)
        found: dict[int, str] = {}
        if not pc.any(broken).as_py():  # nulls (a rule that does not apply) count as not broken
            return found
        for mask, reason in rules:
            for j in np.flatnonzero(pc.fill_null(mask, False).to_numpy(zero_copy_only=False)).tolist():
                found.setdefault(j, reason)
        schema_col = table["schema"]
        for j, reason in found.items():
            if reason == "wrong_schema":
                name = schema_col[j].as_py()
                found[j] = f"wrong_topic:{name}" if name in SCHEMAS else f"unknown_schema:{name}"[:80]
        return found

    def _rules(self, table: pa.Table, keys: Sequence[bytes | None]) -> list[tuple[Any, str]]:
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
        event = table[self.schema.event_ts]
        earliest = pa.scalar(EARLIEST_EVENT, TIMESTAMP)
        rules.append((pc.less(event, earliest), f"ts_too_old:{self.schema.event_ts}"))
        if "fetched_at" in table.column_names:
            limit = pc.add(table["fetched_at"], pa.scalar(MAX_FUTURE_SKEW_S * 1_000_000, pa.duration("us")))
            rules.append((pc.greater(event, limit), f"ts_in_future:{self.schema.event_ts}"))
            rules.append((pc.less(table["fetched_at"], earliest), "ts_too_old:fetched_at"))
        if "day_low" in table.column_names:
            rules.append((pc.greater(table["day_low"], table["day_high"]), "inconsistent_range:day_low>day_high"))
        return rules
