"""The stand-in, driven by the real finnhub-python client, behaves like Finnhub."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import finnhub
import pytest

from stockpipe_dev.localservices.finnhub_standin import FinnhubStandin
from tests.conftest import FREE_TOKEN, PREMIUM_TOKEN


@pytest.fixture
def client_factory(finnhub_standin: FinnhubStandin, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[finnhub.Client]]:
    monkeypatch.setattr(finnhub.Client, "API_URL", finnhub_standin.api_url)
    return finnhub.Client


def test_quote(client_factory: type[finnhub.Client]) -> None:
    quote = client_factory(api_key=FREE_TOKEN).quote("AAPL")
    assert set(quote) == {"c", "d", "dp", "h", "l", "o", "pc", "t"}
    assert quote["c"] > 0
    assert quote["l"] <= quote["c"] <= quote["h"]
    assert quote["t"] > 1_600_000_000


def test_unknown_symbol_gets_an_all_zero_quote(client_factory: type[finnhub.Client]) -> None:
    quote = client_factory(api_key=FREE_TOKEN).quote("ZZZZ")
    assert quote["c"] == 0
    assert quote["t"] == 0
    assert quote["d"] is None


def test_429_past_the_per_minute_budget(finnhub_standin: FinnhubStandin, client_factory: type[finnhub.Client]) -> None:
    finnhub_standin.per_minute = 5
    client = client_factory(api_key=FREE_TOKEN)
    for _ in range(5):
        client.quote("MSFT")
    with pytest.raises(finnhub.FinnhubAPIException) as excinfo:
        client.quote("MSFT")
    assert excinfo.value.status_code == 429
    assert finnhub_standin.stats()["http_429"] == {FREE_TOKEN: 1}
    assert finnhub_standin.max_calls_in_any_minute(FREE_TOKEN) == 5


def test_candles_are_403_on_a_free_key(client_factory: type[finnhub.Client]) -> None:
    with pytest.raises(finnhub.FinnhubAPIException) as excinfo:
        client_factory(api_key=FREE_TOKEN).stock_candles("AAPL", "D", 1735689600, 1738368000)
    assert excinfo.value.status_code == 403
    assert "access" in excinfo.value.message


def test_candles_on_a_premium_key_skip_holidays(client_factory: type[finnhub.Client]) -> None:
    start = int(datetime(2025, 1, 6, tzinfo=UTC).timestamp())
    end = int(datetime(2025, 1, 10, tzinfo=UTC).timestamp())
    candles = client_factory(api_key=PREMIUM_TOKEN).stock_candles("AAPL", "D", start, end)
    assert candles["s"] == "ok"
    days = [datetime.fromtimestamp(t, UTC).date().isoformat() for t in candles["t"]]
    # 2025-01-09 was the national day of mourning for President Carter: NYSE closed.
    assert days == ["2025-01-06", "2025-01-07", "2025-01-08", "2025-01-10"]
    for o, h, low, c in zip(candles["o"], candles["h"], candles["l"], candles["c"], strict=True):
        assert low <= min(o, c) <= max(o, c) <= h


def test_stale_quote_keeps_the_previous_sessions_time(
    finnhub_standin: FinnhubStandin, client_factory: type[finnhub.Client]
) -> None:
    finnhub_standin.stale_symbols = {"IBM"}
    finnhub_standin.clock = lambda: datetime(2025, 11, 26, 16, 0, tzinfo=UTC)
    client = client_factory(api_key=FREE_TOKEN)
    fresh, stale = client.quote("AAPL"), client.quote("IBM")
    assert datetime.fromtimestamp(fresh["t"], UTC).date().isoformat() == "2025-11-26"
    assert datetime.fromtimestamp(stale["t"], UTC).date().isoformat() == "2025-11-25"


def test_invalid_key_is_401(client_factory: type[finnhub.Client]) -> None:
    with pytest.raises(finnhub.FinnhubAPIException) as excinfo:
        client_factory(api_key="not-a-key").quote("AAPL")
    assert excinfo.value.status_code == 401
