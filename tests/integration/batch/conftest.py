"""Fixtures for the history jobs against the real local MinIO and the provider stand-ins."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pyarrow as pa
import pytest
from pydantic import SecretStr

from stockpipe.batch import lakeio
from stockpipe.batch.settings import HistorySettings
from stockpipe.lake.store import Lake
from stockpipe.settings import LakeSettings, load_settings
from stockpipe_dev.localservices.finnhub_standin import FinnhubStandin
from stockpipe_dev.localservices.minio import MinioServer
from stockpipe_dev.localservices.tiingo_standin import TiingoStandin
from tests.conftest import FREE_TOKEN, PREMIUM_TOKEN

TIINGO_TOKEN = "tiingo-test-token-0001"
# Twenty symbols, share classes included (BRK.B: a dot here, a dash at Tiingo).
SYMBOLS20 = [
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "BRK.B", "JPM", "V", "XOM",
    "UNH", "JNJ", "WMT", "PG", "MA", "HD", "CVX", "KO", "PEP", "BF-B",
]  # fmt: skip
# High enough that pacing never slows a test; the bench and the ratelimit tests cover pacing.
FAST_PER_MINUTE = 6000


@pytest.fixture(autouse=True)
def _isolated(restore_logging: None, no_outside_settings: None) -> None:
    """Every batch test: pytest's log handlers back afterwards, no STOCKPIPE_* settings from outside."""


def lake_env(lake: LakeSettings) -> dict[str, str]:
    """The environment a pod would get to reach this lake."""
    assert lake.access_key is not None
    assert lake.secret_key is not None
    return {
        "STOCKPIPE_LAKE__URL": lake.url,
        "STOCKPIPE_LAKE__S3_ENDPOINT_URL": lake.s3_endpoint_url or "",
        "STOCKPIPE_LAKE__ACCESS_KEY": lake.access_key.get_secret_value(),
        "STOCKPIPE_LAKE__SECRET_KEY": lake.secret_key.get_secret_value(),
    }


def finnhub_settings(lake: LakeSettings, standin: FinnhubStandin, **overrides: Any) -> HistorySettings:
    values: dict[str, Any] = {
        "lake": lake,
        "history_provider": "finnhub",
        "finnhub_token": SecretStr(PREMIUM_TOKEN),
        "finnhub_api_url": standin.api_url,
        "history_budget_per_minute": FAST_PER_MINUTE,
        "history_symbols": SYMBOLS20,
        "history_retry_initial_s": 0.01,
        "history_retry_max_s": 0.05,
        **overrides,
    }
    return load_settings(HistorySettings, **values)


def tiingo_settings(lake: LakeSettings, standin: TiingoStandin, **overrides: Any) -> HistorySettings:
    values: dict[str, Any] = {
        "lake": lake,
        "history_provider": "tiingo",
        "tiingo_token": SecretStr(TIINGO_TOKEN),
        "tiingo_api_url": standin.url,
        "history_budget_per_minute": FAST_PER_MINUTE,
        "history_retry_initial_s": 0.01,
        "history_retry_max_s": 0.05,
        **overrides,
    }
    return load_settings(HistorySettings, **values)


@pytest.fixture(scope="module")
def module_finnhub() -> Iterator[FinnhubStandin]:
    """One stand-in for a module whose tests share one backfilled lake."""
    with FinnhubStandin(free_tokens=[FREE_TOKEN], premium_tokens=[PREMIUM_TOKEN], per_minute=FAST_PER_MINUTE) as s:
        assert isinstance(s, FinnhubStandin)
        yield s


@pytest.fixture(scope="module")
def module_lake(minio_server: MinioServer, request: pytest.FixtureRequest) -> LakeSettings:
    """A lake on the local MinIO, under a prefix of its own for the module."""
    return LakeSettings(
        url=f"s3://{minio_server.bucket}/{request.module.__name__.rsplit('.', 1)[-1]}",
        s3_endpoint_url=minio_server.endpoint,
        access_key=SecretStr(minio_server.access_key),
        secret_key=SecretStr(minio_server.secret_key),
    )


@pytest.fixture
def tiingo_standin() -> Iterator[TiingoStandin]:
    with TiingoStandin(tokens=[TIINGO_TOKEN], per_hour=FAST_PER_MINUTE, per_day=FAST_PER_MINUTE) as standin:
        assert isinstance(standin, TiingoStandin)
        yield standin


def lake_state(lake: Lake) -> dict[str, tuple[int, str]]:
    """Every object's name with its size and ETag (the MD5 of its bytes on S3)."""
    return {info.key: (info.size, info.etag) for info in lake.walk("")}


def bars_held(lake: Lake) -> dict[tuple[str, date], dict[str, Any]]:
    """Every daily bar in the lake, by (symbol, session), read from the objects of either layout."""
    held: dict[tuple[str, date], dict[str, Any]] = {}
    for info in lake.walk("raw/daily_bars"):
        for row in lakeio.decode(lake.read(info.key)).to_pylist():
            held[(row["symbol"], row["date"])] = row
    return held


def drop_bars(lake: Lake, holes: set[tuple[str, date]]) -> None:
    """Take some bars out of the lake's objects (a lake that lost them), rewriting those objects."""
    for info in list(lake.walk("raw/daily_bars")):
        table = lakeio.decode(lake.read(info.key))
        keys = zip(table["symbol"].to_pylist(), table["date"].to_pylist(), strict=True)
        keep = [key not in holes for key in keys]
        if not all(keep):
            lake.write_atomic(info.key, lakeio.encode(table.filter(pa.array(keep, pa.bool_()))))
