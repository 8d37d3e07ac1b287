"""Settings of the history jobs (`stockpipe history ...`), from STOCKPIPE_* variables or secret files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from stockpipe.contracts.watchlist import Watchlist
from stockpipe.logs import register_secret
from stockpipe.marketdata.history import (
    FinnhubCandles,
    HistoryProvider,
    RetryPolicy,
    SyntheticHistory,
    TiingoDaily,
)
from stockpipe.marketdata.history.tiingo_eod import DEFAULT_API_URL as TIINGO_API_URL
from stockpipe.marketdata.ratelimit import RateBudget
from stockpipe.marketdata.synthetic import SyntheticMarket
from stockpipe.settings import ConfigError, LakeSettings, StockpipeSettings

ProviderName = Literal["synthetic", "finnhub", "tiingo"]

# Calls a minute each provider allows on its entry plan: Finnhub's free tier (premium plans allow
# more: raise the setting); Tiingo counts per hour (50 on the free plan) and per day, not per
# minute, so its pace is a burst within the hour and a 429 ends the run cleanly.
DEFAULT_BUDGET_PER_MINUTE: dict[str, int] = {"finnhub": 60, "tiingo": 50, "synthetic": 6000}


class HistorySettings(StockpipeSettings):
    lake: LakeSettings = Field(default_factory=LakeSettings)
    history_provider: ProviderName = "synthetic"
    # Symbols: this list (comma-separated or JSON) or else the watchlist file the producer reads.
    history_symbols: Annotated[list[str], NoDecode] = Field(default_factory=list)
    watchlist_file: Path | None = None
    finnhub_token: SecretStr | None = None
    finnhub_api_url: str | None = Field(None, description="None: finnhub-python's own URL")
    tiingo_token: SecretStr | None = None
    tiingo_api_url: str = TIINGO_API_URL
    history_budget_per_minute: int | None = Field(None, ge=1, description="None: the provider's default")
    history_concurrency: int = Field(8, ge=1, le=64, description="provider calls in flight at once (within the budget)")
    history_write_concurrency: int = Field(2, ge=1, le=32, description="lake objects written at once")
    history_rows_per_object: int = Field(
        25_000, ge=1, le=10_000_000, description="bars per lake object: a job's symbols are chunked to about this"
    )
    history_retry_attempts: int = Field(5, ge=1)
    history_retry_initial_s: float = Field(1.0, gt=0)
    history_retry_max_s: float = Field(30.0, gt=0)
    history_timeout_s: float = Field(10.0, gt=0)
    synthetic_seed: int = 7

    @field_validator("history_symbols", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return Watchlist.model_validate_json(f'{{"symbols": {text}}}').symbols
            return [s.strip().upper() for s in text.split(",") if s.strip()]
        return value

    @field_validator("history_symbols")
    @classmethod
    def _valid(cls, value: list[str]) -> list[str]:
        return Watchlist(symbols=value).symbols  # the one place ticker rules live

    @model_validator(mode="after")
    def _token_for_provider(self) -> HistorySettings:
        if self.history_provider == "finnhub" and self.finnhub_token is None:
            raise ValueError("history_provider=finnhub needs STOCKPIPE_FINNHUB_TOKEN (a premium key)")
        if self.history_provider == "tiingo" and self.tiingo_token is None:
            raise ValueError("history_provider=tiingo needs STOCKPIPE_TIINGO_TOKEN (free at tiingo.com)")
        for token in (self.finnhub_token, self.tiingo_token, self.lake.secret_key):
            if token is not None:
                register_secret(token.get_secret_value())
        return self

    @property
    def budget_per_minute(self) -> int:
        return self.history_budget_per_minute or DEFAULT_BUDGET_PER_MINUTE[self.history_provider]

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            attempts=self.history_retry_attempts,
            initial_wait_s=self.history_retry_initial_s,
            max_wait_s=self.history_retry_max_s,
        )

    def symbols(self) -> list[str]:
        if self.history_symbols:
            return list(self.history_symbols)
        if self.watchlist_file is not None:
            try:
                # All of the file's symbols: `enabled` pauses the stream, not the history.
                symbols = Watchlist.from_file(self.watchlist_file).symbols
            except (OSError, ValueError) as exc:
                raise ConfigError(f"watchlist_file {self.watchlist_file}: {exc}") from None
            if symbols:
                return symbols
        raise ConfigError("no symbols: set STOCKPIPE_HISTORY_SYMBOLS (e.g. AAPL,MSFT) or STOCKPIPE_WATCHLIST_FILE")


def build_provider(settings: HistorySettings, budget: RateBudget | None = None) -> HistoryProvider:
    """The configured provider with its own budget (one per process, shared by every worker)."""
    budget = budget or RateBudget(per_minute=settings.budget_per_minute)
    if settings.history_provider == "finnhub":
        assert settings.finnhub_token is not None  # checked by the validator
        return FinnhubCandles(
            settings.finnhub_token.get_secret_value(),
            budget,
            api_url=settings.finnhub_api_url,
            retry=settings.retry_policy,
            timeout_s=settings.history_timeout_s,
        )
    if settings.history_provider == "tiingo":
        assert settings.tiingo_token is not None
        return TiingoDaily(
            settings.tiingo_token.get_secret_value(),
            budget,
            api_url=settings.tiingo_api_url,
            retry=settings.retry_policy,
            timeout_s=settings.history_timeout_s,
        )
    return SyntheticHistory(budget, SyntheticMarket(settings.synthetic_seed))
