"""Fixtures of the warehouse tests: synthetic lake data in the exact lake layout, and a fake Snowflake.

The lake data comes from SyntheticMarket through stockpipe_dev.bench.lakegen: quotes and trades as
stream files (`raw/<dataset>/dt=.../<topic>+<p>+<first:020d>+<last:020d>.parquet`, lake schemas of
quote.v1/trade.v1), daily bars as `raw/daily_bars/dt=.../<symbol>.parquet` (DAILY_BAR_SCHEMA) and a
few dead letters (dlq.v1).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from stockpipe.lake.store import Lake
from stockpipe.marketdata import calendar
from stockpipe.marketdata.synthetic import SyntheticMarket
from stockpipe.settings import LakeSettings
from stockpipe.warehouse.settings import SnowflakeSettings
from stockpipe_dev.bench import lakegen

SYMBOLS = ["AAPL", "MSFT", "BRK.B", "NVDA"]
BARS_FROM = date(2024, 7, 1)
BARS_TO = date(2025, 1, 10)
SESSION = date(2025, 1, 10)


@dataclass
class SyntheticLake:
    settings: LakeSettings
    lake: Lake
    market: SyntheticMarket
    offsets: lakegen.Offsets
    symbols: list[str]
    keys: dict[str, list[str]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)  # distinct natural keys written, per dataset

    @property
    def objects(self) -> int:
        return sum(len(v) for v in self.keys.values())

    def add_session(self, day: date, quote_every_minutes: int = 5, trades_per_minute: int = 1) -> None:
        """Bars of `day` for every symbol plus the session's quotes and trades (a new trading day)."""
        self.keys.setdefault("daily_bars", []).extend(
            lakegen.write_daily_bars(self.lake, self.market, self.symbols, [day])
        )
        written = lakegen.write_session(
            self.lake, self.market, self.symbols, day, self.offsets, quote_every_minutes, trades_per_minute
        )
        for dataset, keys in written.items():
            self.keys.setdefault(dataset, []).extend(keys)
        minutes = calendar.session(day).minutes  # type: ignore[union-attr]
        self.rows["daily_bars"] = self.rows.get("daily_bars", 0) + len(self.symbols)
        self.rows["quotes"] = self.rows.get("quotes", 0) + len(self.symbols) * -(-minutes // quote_every_minutes)
        self.rows["trades"] = self.rows.get("trades", 0) + len(self.symbols) * minutes * trades_per_minute


def write_synthetic_lake(settings: LakeSettings, symbols: list[str] = SYMBOLS) -> SyntheticLake:
    """Half a year of daily bars (across a year end), one session of quotes and trades, dead letters."""
    data = SyntheticLake(settings, Lake(settings), SyntheticMarket(seed=11), lakegen.Offsets.start(), symbols)
    days = [d for d in calendar.sessions_between(BARS_FROM, BARS_TO) if d != SESSION]
    data.keys["daily_bars"] = lakegen.write_daily_bars(data.lake, data.market, symbols, days)
    data.rows["daily_bars"] = len(days) * len(symbols)
    data.add_session(SESSION)
    at = datetime(2025, 1, 10, 15, tzinfo=UTC)
    rejects = [
        ("missing_field:price", "quotes", 0, 17, b'{"schema":"quote.v1","symbol":"AAPL"}', at),
        ("bad_json", "trades", 1, 4, b"\xff\xfe", at + timedelta(hours=1)),
        ("missing_field:price", "quotes", 2, 3, b"{}", at + timedelta(hours=2)),
    ]
    data.keys["dlq"] = lakegen.write_dlq(data.lake, rejects, data.offsets)
    data.rows["dlq"] = len(rejects)
    return data


@pytest.fixture
def local_lake(tmp_path_factory: pytest.TempPathFactory) -> SyntheticLake:
    root = tmp_path_factory.mktemp("lake")
    return write_synthetic_lake(LakeSettings(url=f"file://{root}"))


@pytest.fixture
def minio_lake(s3_lake: LakeSettings) -> SyntheticLake:
    return write_synthetic_lake(s3_lake, symbols=SYMBOLS[:2])


@pytest.fixture
def snowflake_settings(fakesnow_server: dict[str, Any]) -> SnowflakeSettings:
    """Settings of a fresh database on the fake server, loading through the internal stage."""
    return SnowflakeSettings(
        account=fakesnow_server["account"],
        user=fakesnow_server["user"],
        password=fakesnow_server["password"],
        host=fakesnow_server["host"],
        port=fakesnow_server["port"],
        protocol="http",
        database=f"T{uuid.uuid4().hex[:12].upper()}",
        stage_mode="internal",
    )
