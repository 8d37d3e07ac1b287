"""The watchlist file: what the producer streams.

Written by the operator into the producer's ConfigMap (key `watchlist.json`, mounted as a file)
or by hand on one machine; the producer re-reads it when it changes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# US tickers: 1-5 capitals, optionally a share class after a dot (BRK.B) or a dash (BF-B).
SYMBOL_PATTERN = r"^[A-Z]{1,5}([.-][A-Z]{1,2})?$"
SYMBOL_RE = re.compile(SYMBOL_PATTERN)
MAX_SYMBOLS = 500
WATCHLIST_FILE_KEY = "watchlist.json"

Source = Literal["quotes", "trades"]


def default_sources() -> list[Source]:
    return ["quotes"]


class SymbolOptions(BaseModel):
    """How one symbol is streamed: its poll interval and its sources."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    poll_interval_seconds: int = Field(ge=5, le=3600, alias="pollIntervalSeconds")
    sources: list[Source] = Field(min_length=1)


class Watchlist(BaseModel):
    """A watchlist's spec, or the producer's view of all of them (the file the operator renders).

    `pollIntervalSeconds` and `sources` apply to every symbol without an entry in `symbolOptions`; the
    operator gives each symbol its own entry (the fastest interval and the union of sources of the lists
    that hold it), so one list's options never leak onto another list's symbols.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    symbols: list[str] = Field(default_factory=list, max_length=MAX_SYMBOLS)
    poll_interval_seconds: int = Field(15, ge=5, le=3600, alias="pollIntervalSeconds")
    sources: list[Source] = Field(default_factory=default_sources, min_length=1)
    enabled: bool = True
    symbol_options: dict[str, SymbolOptions] = Field(default_factory=dict, alias="symbolOptions")

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, symbols: list[str]) -> list[str]:
        bad = [s for s in symbols if not SYMBOL_RE.match(s)]
        if bad:
            raise ValueError(f"not US ticker symbols: {bad[:5]}")
        if len(set(symbols)) != len(symbols):
            raise ValueError("symbols must be unique")
        return symbols

    @model_validator(mode="after")
    def _options_name_listed_symbols(self) -> Watchlist:
        unlisted = sorted(set(self.symbol_options) - set(self.symbols))
        if unlisted:
            raise ValueError(f"symbolOptions for symbols not in symbols: {unlisted[:5]}")
        return self

    @property
    def active_symbols(self) -> list[str]:
        return self.symbols if self.enabled else []

    def options_for(self, symbol: str) -> SymbolOptions:
        return self.symbol_options.get(symbol) or SymbolOptions(
            poll_interval_seconds=self.poll_interval_seconds, sources=self.sources
        )

    def symbols_for(self, source: Source) -> list[str]:
        """The active symbols streamed from `source`."""
        return [s for s in self.active_symbols if source in self.options_for(s).sources]

    def to_json(self) -> str:
        body = self.model_dump(by_alias=True)
        if not body["symbolOptions"]:
            del body["symbolOptions"]  # a hand-written file stays as short as it was
        return json.dumps(body, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_file(cls, path: Path) -> Watchlist:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))
