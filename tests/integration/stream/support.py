"""What the stream tests share: one valid quote, waiting for a condition, a chaos scenario's exactly-once."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

from stockpipe_dev.bench.chaos_common import Scenario

# A quote.v1 that passes the contract; tests override its times and fields with {**GOOD_QUOTE, ...}.
GOOD_QUOTE: dict[str, Any] = {
    "schema": "quote.v1",
    "symbol": "AAPL",
    "quote_ts": "2025-11-28T15:00:00Z",
    "fetched_at": "2025-11-28T15:00:01Z",
    "source": "synthetic",
    "price": 190.0,
    "day_high": 191.0,
    "day_low": 188.0,
    "day_open": 189.0,
    "prev_close": 189.0,
}


def wait_for(
    condition: Callable[[], bool], timeout_s: float, proc: subprocess.Popen[bytes] | None = None, poll_s: float = 0.2
) -> bool:
    """True once condition() holds; False at the deadline, or as soon as `proc` (if given) has exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc is not None and proc.poll() is not None:
            return condition()
        time.sleep(poll_s)
    return condition()


def exactly_once(scenario: Scenario) -> None:
    """A chaos scenario's verdict: records produced, none lost or doubled in the lake or in bronze, no failed check.

    Outside a test module pytest does not rewrite asserts: each one carries the scenario for its message."""
    assert scenario.produced > 0, scenario
    assert (scenario.lost, scenario.duplicated) == (0, 0), scenario
    assert (scenario.bronze_lost, scenario.bronze_duplicated) == (0, 0), scenario
    assert scenario.bronze_rows == scenario.produced, scenario
    assert not scenario.detail.startswith("FAILED"), scenario.detail
