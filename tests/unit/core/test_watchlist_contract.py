from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from stockpipe.contracts.watchlist import Watchlist


def test_round_trip_through_the_file(tmp_path: Path) -> None:
    wl = Watchlist(symbols=["AAPL", "BRK.B"], pollIntervalSeconds=30, sources=["quotes", "trades"])
    path = tmp_path / "watchlist.json"
    path.write_text(wl.to_json())
    assert Watchlist.from_file(path) == wl
    assert '"pollIntervalSeconds": 30' in path.read_text()


@pytest.mark.parametrize(
    "spec",
    [
        {"symbols": ["aapl"]},
        {"symbols": ["AAPL", "AAPL"]},
        {"symbols": ["TOOLONG"]},
        {"pollIntervalSeconds": 4},
        {"sources": []},
        {"sources": ["news"]},
        {"unexpected": 1},
    ],
)
def test_bad_watchlists_are_rejected(spec: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Watchlist.model_validate(spec)


def test_disabled_watchlist_streams_nothing() -> None:
    assert Watchlist(symbols=["AAPL"], enabled=False).active_symbols == []
