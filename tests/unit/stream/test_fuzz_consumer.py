"""Fuzzing the consumer's real batch path in a child process: no crash, no hang, no silent drop.

Bounded here (a few thousand inputs); `make chaos` runs the same harness on 100,000 (scenario `fuzz`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stockpipe_dev.bench.fuzz import SEEDS, FuzzHarness, FuzzReport, fuzz_batches, good_quote, run_fuzz

FIELDS = ["schema", "symbol", "quote_ts", "fetched_at", "source", "price", "day_high", "day_low", "watermark_ts"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), inner),
    max_leaves=12,
)


def encode(value: Any, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def quote_with_a_field_replaced(draw: st.DrawFn) -> bytes:
    quote = json.loads(good_quote(draw(st.integers(0, 1000))))
    quote[draw(st.sampled_from(sorted(quote)))] = draw(json_values)
    return encode(quote, draw(st.booleans()))


@st.composite
def quote_bytes_mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(good_quote(draw(st.integers(0, 1000))))
    at = draw(st.integers(0, len(data)))
    cut = draw(st.integers(at, min(len(data), at + 8)))
    data[at:cut] = draw(st.binary(max_size=8) | st.sampled_from(SEEDS))
    return bytes(data)


inputs = (
    st.binary(max_size=200)
    | st.builds(encode, json_values, st.booleans())
    | quote_with_a_field_replaced()
    | quote_bytes_mutated()
    | st.sampled_from(SEEDS)
)


@pytest.fixture(scope="module")
def harness() -> Iterator[FuzzHarness]:
    with FuzzHarness(timeout_s=60) as h:
        yield h


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(values=st.lists(inputs, min_size=1, max_size=8), seed=st.integers(0, 2**16))
def test_arbitrary_values_alone_and_among_good_quotes_never_crash_hang_or_vanish(
    harness: FuzzHarness, values: list[bytes], seed: int
) -> None:
    report = FuzzReport()
    for batch in fuzz_batches(values, random.Random(seed), mix=len(values)):  # positions only, not security
        harness.run(batch, report)
    assert report.failures == [], report.failures


def test_seeds_that_crashed_pyarrow_are_dead_lettered_with_their_reasons(harness: FuzzHarness) -> None:
    report = FuzzReport()
    for value in (b"null", b" null", b"\xef\xbb\xbfnull", b"{} null"):
        # First in a batch, where a leading null used to kill the process inside Arrow's reader.
        assert harness.run([(value, b"AAPL"), (good_quote(1), b"AAPL")], report).ok
    assert report.crashes == 0
    assert report.rows == 4
    assert report.reasons == {
        "row": 4,
        "dlq:not_object:null": 2,
        "dlq:utf8_bom": 1,
        "dlq:not_one_object": 1,
    }


def test_generated_corpus_runs_clean() -> None:
    report = run_fuzz(1000, seed=7)
    assert report.inputs == 1000
    assert (report.crashes, report.hangs, report.silent_drops, report.duplicates) == (0, 0, 0, 0), report.failures
    assert report.rows > 0
    assert report.dead_letters > 0
