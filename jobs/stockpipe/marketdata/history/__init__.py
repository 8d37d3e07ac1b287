"""Daily-bar history providers behind one interface: Finnhub candles (premium), Tiingo (free), synthetic."""

from stockpipe.marketdata.history.base import (
    FatalProviderError,
    HistoryBar,
    HistoryError,
    HistoryProvider,
    RateLimited,
    RetryPolicy,
    SymbolNotFound,
    TransientProviderError,
)
from stockpipe.marketdata.history.finnhub_candles import FinnhubCandles
from stockpipe.marketdata.history.synthetic_history import SyntheticHistory
from stockpipe.marketdata.history.tiingo_eod import TiingoDaily

__all__ = [
    "FatalProviderError",
    "FinnhubCandles",
    "HistoryBar",
    "HistoryError",
    "HistoryProvider",
    "RateLimited",
    "RetryPolicy",
    "SymbolNotFound",
    "SyntheticHistory",
    "TiingoDaily",
    "TransientProviderError",
]
