"""BatchValidator.proves_clean: a producer's shortcut that must never accept what check() refuses.

check() on the JSON bytes is the contract's verdict (the consumer's own). proves_clean() looks at the
Python values instead; it may say False for a clean batch (check() then decides), but a True for a
batch with one message check() refuses would publish a message the consumer dead-letters.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockpipe.contracts.messages import QUOTE_V1, TRADE_V1, MessageSchema
from stockpipe.settings import KafkaSettings
from stockpipe.stream.publisher import Publisher, _encode_all, _symbol_keys
from stockpipe.stream.validation import BatchValidator
from stockpipe_dev.bench.stream import quote_messages
from stockpipe_dev.localservices.process import free_port

pytestmark = pytest.mark.unit

VALIDATORS = {s.name: BatchValidator(s) for s in (QUOTE_V1, TRADE_V1)}

GOOD_TRADE: dict[str, Any] = {
    "schema": "trade.v1",
    "symbol": "BRK.B",
    "trade_ts": "2025-11-28T15:00:00.123Z",
    "fetched_at": "2025-11-28T15:00:01Z",
    "source": "finnhub_ws",
    "price": 470.25,
    "size": 12,
    "seq": 0,
    "conditions": ["1", "12"],
}


class Venue(StrEnum):
    NYSE = "NYSE"


def verdicts(schema: MessageSchema, messages: list[Any]) -> tuple[bool, list[str]]:
    """(proves_clean, check()'s reasons) for one batch, as the publisher computes them."""
    validator = VALIDATORS[schema.name]
    values, unencodable = _encode_all(messages)
    keys = _symbol_keys(messages)
    n = len(values)
    zeros, positions = np.zeros(n, np.int64), np.arange(n, dtype=np.int64)
    rejects = validator.check(values, keys, zeros, positions, zeros, rows=False).rejects
    proved = not unencodable and validator.proves_clean(messages, values, keys)
    return proved, [r.reason for r in rejects]


def test_clean_batches_are_proved_clean_so_the_shortcut_is_taken() -> None:
    quotes = quote_messages(500)
    assert verdicts(QUOTE_V1, quotes) == (True, [])
    trades = [{**GOOD_TRADE, "seq": i, "size": float(i) + 0.5} for i in range(50)]
    trades.append({**GOOD_TRADE, "conditions": []})
    trades.append({k: v for k, v in GOOD_TRADE.items() if k != "conditions"})  # optional: may be absent
    assert verdicts(TRADE_V1, trades) == (True, [])
    no_change = [{**q, "change": None, "change_pct": None} for q in quote_messages(10)]
    assert verdicts(QUOTE_V1, no_change) == (True, [])


GOOD_QUOTE = quote_messages(1)[0]


class Opaque:
    """A value no encoder knows, with a repr that is the same in every process (parametrize ids)."""

    def __repr__(self) -> str:
        return "Opaque()"


# Python values whose JSON check() refuses, or which only look like the contract's types.
QUOTE_TRAPS: list[dict[str, Any]] = [
    {"price": True},  # a bool: Arrow converts it to 1.0, but JSON's true is no number
    {"day_high": False},
    {"price": Decimal("190.5")},  # encoded as a string
    {"price": float("nan")},  # encoded as null
    {"change": float("inf")},  # null, accepted: proving it must not claim more than that
    {"price": -1.0},
    {"price": 0},
    {"day_low": 500.0},
    {"price": 2**70},
    {"symbol": b"AAPL"},  # bytes: base64 in JSON
    {"symbol": "aapl!"},
    {"source": 7},
    {"quote_ts": "2025-11-28T15:00:00"},  # no zone: JSON's parser takes it, the shortcut must not guess
    {"quote_ts": "2025-11-28"},
    {"quote_ts": "1987-10-19T14:30:00Z"},
    {"quote_ts": "2031-01-01T00:00:00Z"},
    {"quote_ts": datetime(2025, 11, 28, 15, tzinfo=UTC)},
    {"quote_ts": "2025-11-28T15:00:00.123456789Z"},
    {"schema": "quote.v2"},
    {"schema": "trade.v1"},
    {"schema": None},
    {"source": "x" * 20_000},
    {"price": [190.0]},
    {"price": {"value": 190.0}},
    {"source": Venue.NYSE},
    {"price": np.float64(190.0)},
    {"price": np.float32(190.0)},
    {"price": np.int64(190)},
    {"extra": Opaque()},
]
TRADE_TRAPS: list[dict[str, Any]] = [
    {"seq": 2.0},  # converts to int 2 in Arrow, refused as JSON for an integer field
    {"seq": True},
    {"seq": -1},
    {"seq": 2**63},
    {"size": -0.5},
    {"conditions": [1, 2]},
    {"conditions": [b"1"]},
    {"conditions": "1"},
    {"conditions": [None]},
    {"trade_ts": None},
]


def with_changes(good: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    return {**good, **changes}


@pytest.mark.parametrize("changes", QUOTE_TRAPS, ids=repr)
def test_a_quote_trap_alone_or_among_good_ones_is_never_proved_while_check_refuses_it(changes: dict[str, Any]) -> None:
    bad = with_changes(GOOD_QUOTE, changes)
    for batch in ([bad], [*quote_messages(30), bad, *quote_messages(5)]):
        proved, reasons = verdicts(QUOTE_V1, batch)
        assert not (proved and reasons), (changes, reasons)


@pytest.mark.parametrize("changes", TRADE_TRAPS, ids=repr)
def test_a_trade_trap_is_never_proved_while_check_refuses_it(changes: dict[str, Any]) -> None:
    batch = [GOOD_TRADE, with_changes(GOOD_TRADE, changes)]
    proved, reasons = verdicts(TRADE_V1, batch)
    assert not (proved and reasons), (changes, reasons)


def test_messages_that_are_not_dicts_are_left_to_check() -> None:
    proved, reasons = verdicts(QUOTE_V1, [GOOD_QUOTE, [1, 2, 3]])
    assert not proved
    assert reasons == ["not_object:array"]


# Anything a buggy builder might put in a field.
ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "AAPL",
            "BRK.B",
            "quote.v1",
            "trade.v1",
            "2025-11-28T15:00:00Z",
            "2025-11-28 15:00:00+01:00",
            "2025-11-28T15:00:00",
            "2031-01-01T00:00:00Z",
            "1999-12-31T23:59:59Z",
            "",
        ]
    ),
    st.text(max_size=8),
    st.binary(max_size=4),
    st.lists(st.one_of(st.text(max_size=3), st.integers(), st.none()), max_size=3),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
)


def mutated(good: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The good message with some fields replaced by anything, and some dropped."""
    names = sorted(good)
    return st.fixed_dictionaries(
        {},
        optional={name: ANY_VALUE for name in names},
    ).flatmap(
        lambda changes: st.sets(st.sampled_from(names), max_size=2).map(
            lambda dropped: {k: v for k, v in {**good, **changes}.items() if k not in dropped}
        )
    )


@settings(max_examples=400, deadline=None)
@given(st.lists(mutated(GOOD_QUOTE), min_size=1, max_size=4))
def test_no_quote_batch_is_proved_clean_when_check_refuses_one(batch: list[dict[str, Any]]) -> None:
    proved, reasons = verdicts(QUOTE_V1, batch)
    assert not (proved and reasons), reasons


@settings(max_examples=300, deadline=None)
@given(st.lists(mutated(GOOD_TRADE), min_size=1, max_size=4))
def test_no_trade_batch_is_proved_clean_when_check_refuses_one(batch: list[dict[str, Any]]) -> None:
    proved, reasons = verdicts(TRADE_V1, batch)
    assert not (proved and reasons), reasons


@pytest.mark.parametrize("value", [2**53 + 1, 2**63 - 1, 10**9 + 1])
def test_an_integer_past_a_float_s_precision_is_refused_by_its_field_not_an_error(value: int) -> None:
    # As a float the limit comparison raised ArrowInvalid for the whole batch (the consumer's check too).
    assert verdicts(TRADE_V1, [{**GOOD_TRADE, "seq": value}, GOOD_TRADE]) == (False, ["out_of_range:seq"])
    assert verdicts(QUOTE_V1, [{**GOOD_QUOTE, "price": value}]) == (False, ["out_of_range:price"])


def test_the_publisher_rejects_what_cannot_be_encoded_by_name_and_keeps_the_rest_in_check() -> None:
    # No broker (a closed loopback port): every message here is refused before anything is queued.
    publisher = Publisher(KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}"))
    bad = [
        with_changes(GOOD_QUOTE, {"price": object()}),
        with_changes(GOOD_QUOTE, {"price": -1.0}),
        with_changes(GOOD_QUOTE, {"price": True}),
    ]
    result = publisher.publish("quotes", QUOTE_V1, bad)
    assert result.queued == 0
    assert result.rejected == {
        "not_encodable:Encoding objects of type object is unsupported": 1,
        "non_positive:price": 1,
        "wrong_type:price": 1,
    }
    # Bytes would be written as base64 strings: refused by name, not published as garbage.
    binary = [with_changes(GOOD_TRADE, {"source": b"finnhub_ws"}), with_changes(GOOD_TRADE, {"conditions": [b"1"]})]
    result = publisher.publish("trades", TRADE_V1, binary)
    assert result.queued == 0
    assert result.rejected == {"not_encodable:bytes in source": 1, "not_encodable:bytes in conditions": 1}
