"""The watchlist file: what the producer streams.

Written by the operator into the producer's ConfigMap (key `watchlist.json`, mounted as a file)
or by hand on one machine; the producer re-reads it when it changes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# US tickers: 1-5 capitals, optionally a share class after a dot (BRK.B) or a dash (BF-B).
SYMBOL_PATTERN = r"^[A-Z]{1,5}([.-][A-Z]{1,2})?$"
SYMBOL_RE = re.compile(SYMBOL_PATTERN)
MAX_SYMBOLS = 500
WATCHLIST_FILE_KEY = "watchlist.json"

Source = Literal["quotes", "trades"]


def default_sources() -> list[Source]:
    return ["quotes"]


class Watchlist(BaseModel):
    """The producer's view of all watchlists: symbols union, options, enabled flag."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    symbols: list[str] = Field(default_factory=list, max_length=MAX_SYMBOLS)
    poll_interval_seconds: int = Field(15, ge=5, le=3600, alias="pollIntervalSeconds")
    sources: list[Source] = Field(default_factory=default_sources, min_length=1)
    enabled: bool = True

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, symbols: list[str]) -> list[str]:
        bad = [s for s in symbols if not SYMBOL_RE.match(s)]
        if bad:
            raise ValueError(f"not US ticker symbols: {bad[:5]}")
        if len(set(symbols)) != len(symbols):
            raise ValueError("symbols must be unique")
        return symbols

    @property
    def active_symbols(self) -> list[str]:
        return self.symbols if self.enabled else []

    def to_json(self) -> str:
        return json.dumps(self.model_dump(by_alias=True), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_file(cls, path: Path) -> Watchlist:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))
