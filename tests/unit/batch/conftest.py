"""Helpers for the history job tests: settings on a local lake, a provider that records its calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest

from stockpipe.batch.settings import HistorySettings
from stockpipe.marketdata.history import HistoryBar, SyntheticHistory
from stockpipe.marketdata.ratelimit import RateBudget
from stockpipe.settings import LakeSettings, load_settings


@pytest.fixture(autouse=True)
def _isolated(restore_logging: None, no_outside_settings: None) -> None:
    """Every batch test: pytest's log handlers back afterwards, no STOCKPIPE_* settings from outside."""


@dataclass
class RecordingProvider:
    """The synthetic provider, recording each fetch; `tamper` can spoil or fail what it returns."""

    name: str = "synthetic"
    budget: RateBudget = field(default_factory=lambda: RateBudget(per_minute=100_000, per_second=100_000))
    calls: list[tuple[str, date, date]] = field(default_factory=list)
    tamper: Callable[[str, list[HistoryBar]], list[HistoryBar]] | None = None

    def fetch(self, symbol: str, start: date, end: date) -> list[HistoryBar]:
        self.calls.append((symbol, start, end))
        bars = SyntheticHistory(self.budget).fetch(symbol, start, end)
        return self.tamper(symbol, bars) if self.tamper else bars


@pytest.fixture
def provider() -> RecordingProvider:
    return RecordingProvider()


@pytest.fixture
def settings(tmp_path: Path) -> HistorySettings:
    return load_settings(
        HistorySettings,
        lake=LakeSettings(url=f"file://{tmp_path / 'lake'}"),
        history_symbols=["AAPL", "MSFT", "BRK.B"],
    )


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under the lake with its bytes and modification time."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}
