from __future__ import annotations

import math
from dataclasses import replace
from datetime import date

import pytest

from stockpipe.batch.checks import check_bars
from stockpipe.marketdata.history import HistoryBar

GOOD = HistoryBar("AAPL", date(2025, 11, 28), open=10.0, high=11.0, low=9.5, close=10.5, volume=1000.0)
RANGE = (date(2025, 11, 1), date(2025, 11, 30))


def test_a_good_bar_on_an_early_close_is_accepted() -> None:
    accepted, rejected = check_bars("AAPL", [GOOD], *RANGE)
    assert accepted == [GOOD]
    assert rejected == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"open": 12.0}, "open outside low..high"),
        ({"close": 9.0}, "close outside low..high"),
        ({"low": 11.5, "high": 11.0}, "low above high"),
        ({"volume": -1.0}, "negative volume"),
        ({"close": math.nan}, "close missing or not a number"),
        ({"volume": math.inf}, "volume missing or not a number"),
        ({"low": 0.0}, "price not positive"),
        ({"day": date(2025, 11, 27)}, "not an NYSE session"),  # Thanksgiving
        ({"day": date(2025, 11, 29)}, "not an NYSE session"),  # a Saturday
        ({"day": date(2025, 12, 1)}, "outside the requested range"),
        ({"symbol": "MSFT"}, "wrong symbol"),
    ],
)
def test_bad_bars_are_rejected_with_their_reason(changes: dict[str, object], reason: str) -> None:
    bad = replace(GOOD, **changes)  # type: ignore[arg-type]
    accepted, rejected = check_bars("AAPL", [bad, replace(GOOD, day=date(2025, 11, 26))], *RANGE)
    assert [b.day for b in accepted] == [date(2025, 11, 26)]
    assert [r.reason for r in rejected] == [reason]
    assert rejected[0].symbol == "AAPL"
    assert reason in str(rejected[0])


def test_the_january_2025_closure_is_rejected() -> None:
    # 2025-01-09: national day of mourning, a weekday the NYSE was closed.
    accepted, rejected = check_bars("AAPL", [replace(GOOD, day=date(2025, 1, 9))], date(2025, 1, 1), date(2025, 1, 31))
    assert accepted == []
    assert rejected[0].reason == "not an NYSE session"
    assert "Thursday" in str(rejected[0])


def test_duplicates_keep_the_first_and_output_is_sorted() -> None:
    later = replace(GOOD, day=date(2025, 11, 28))
    earlier = replace(GOOD, day=date(2025, 11, 3))
    accepted, rejected = check_bars("AAPL", [later, earlier, replace(later, close=10.9)], *RANGE)
    assert [b.day for b in accepted] == [date(2025, 11, 3), date(2025, 11, 28)]
    assert accepted[1].close == 10.5
    assert [r.reason for r in rejected] == ["duplicate day"]
