"""Batch history benchmark: a 500-symbol year-to-date backfill paced by the rate budget.

The Finnhub stand-in runs in this process with the same per-minute budget as the client, so any
pacing error shows up as a 429. The number that matters is how much of the budget the job uses:
achieved calls per minute (as the provider counted them) against the budget, with no 429; once on
a quiet machine (`achieved_ratio_quiet`) and once while another process keeps a core busy
(`achieved_ratio_loaded`). `objects_written` is what the backfill left in the lake.
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
import string
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from stockpipe.batch import jobs
from stockpipe.batch.settings import HistorySettings
from stockpipe.marketdata import calendar
from stockpipe.marketdata.synthetic import DailyBar, SyntheticMarket
from stockpipe.settings import LakeSettings, load_settings
from stockpipe_dev.localservices.finnhub_standin import FinnhubStandin

log = logging.getLogger(__name__)

# 500 calls a minute for 500 symbols: the run spans one full 60 s window (about a minute, fine
# for `make bench`), so the provider's sliding-window count reaches the budget exactly; a faster
# budget would finish inside the window and test only the spacing of calls, never the window.
BENCH_BUDGET_PER_MIN = 500
BENCH_SYMBOLS = 500


def bench_symbols(count: int = BENCH_SYMBOLS) -> list[str]:
    """Distinct valid tickers (AAA, AAB, ...), the same on every run."""
    letters = string.ascii_uppercase
    return ["".join(p) for p in itertools.islice(itertools.product(letters, repeat=3), count)]


class _PrecomputedMarket(SyntheticMarket):
    """The synthetic market with every bar the bench asks for computed before the clock starts.

    The stand-in shares this process (and its GIL) with the job under test; drawing 113,000
    intraday paths while serving would bench the stand-in, not the job. The bars are the same.
    """

    def __init__(self, symbols: list[str], days: list[date]) -> None:
        super().__init__()
        self._bars = {(s, d): super(_PrecomputedMarket, self).daily_bar(s, d) for s in symbols for d in days}

    def daily_bar(self, symbol: str, day: date) -> DailyBar:
        bar = self._bars.get((symbol, day))
        return bar if bar is not None else super().daily_bar(symbol, day)


def _rate_per_min(times: list[float]) -> float:
    """Calls a minute as the provider saw them: from the first accepted call to the last."""
    if len(times) < 2:
        return 0.0
    ordered = sorted(times)
    return (len(ordered) - 1) / (ordered[-1] - ordered[0]) * 60.0


def _backfill_once(
    standin: FinnhubStandin, token: str, names: list[str], start: date, end: date, budget_per_min: int
) -> dict[str, Any]:
    """One backfill into a fresh lake on its own token (its own budget window at the stand-in)."""
    with tempfile.TemporaryDirectory(prefix="stockpipe-bench-lake-") as lake_dir:
        settings = load_settings(
            HistorySettings,
            lake=LakeSettings(url=f"file://{lake_dir}"),
            history_provider="finnhub",
            finnhub_token=SecretStr(token),
            finnhub_api_url=standin.api_url,
            history_budget_per_minute=budget_per_min,
            history_symbols=names,
        )
        started = time.monotonic()
        summary = jobs.backfill(settings, start, end)
        elapsed = time.monotonic() - started
    stats = standin.stats()
    times = standin.accepted_times.get(token, [])
    achieved = _rate_per_min(times)
    return {
        "calls": len(times),
        "achieved_per_min": round(achieved, 1),
        "achieved_ratio": round(achieved / budget_per_min, 3),
        "max_calls_in_any_minute": standin.max_calls_in_any_minute(token),
        "http_429": int(stats["http_429"].get(token, 0)),  # type: ignore[attr-defined]
        "bars_written": summary.bars_written,
        "bars_rejected": summary.bars_rejected,
        "objects_written": summary.objects_written,
        "symbols_failed": len(summary.symbols_failed),
        "ok": summary.ok,
        "elapsed_s": round(elapsed, 1),
    }


def busy_core() -> subprocess.Popen[bytes]:
    """Another process that keeps one core busy (the machine's other work), until killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def run_batch_bench(
    out_dir: Path,
    symbols: int = BENCH_SYMBOLS,
    budget_per_min: int = BENCH_BUDGET_PER_MIN,
    end: date | None = None,
) -> dict[str, Any]:
    """The backfill twice: on a quiet machine, then while another process keeps one core busy."""
    end = end or jobs.last_closed_session()
    start = date(end.year, 1, 1)
    names = bench_symbols(symbols)
    prepared = time.monotonic()
    market = _PrecomputedMarket(names, calendar.sessions_between(start, end))
    log.info("batch bench: stand-in bars computed in %ss", round(time.monotonic() - prepared, 1))
    quiet_token, loaded_token = secrets.token_hex(12), secrets.token_hex(12)
    with FinnhubStandin(
        premium_tokens=[quiet_token, loaded_token], per_minute=budget_per_min, market=market
    ) as standin:
        assert isinstance(standin, FinnhubStandin)
        quiet = _backfill_once(standin, quiet_token, names, start, end, budget_per_min)
        spinner = busy_core()
        try:
            loaded = _backfill_once(standin, loaded_token, names, start, end, budget_per_min)
        finally:
            spinner.kill()
            spinner.wait()
    result: dict[str, Any] = {
        "symbols": symbols,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "budget_per_min": budget_per_min,
        **{k: quiet[k] for k in ("calls", "achieved_per_min", "achieved_ratio", "max_calls_in_any_minute")},
        "http_429": quiet["http_429"] + loaded["http_429"],
        "bars_written": quiet["bars_written"],
        "bars_rejected": quiet["bars_rejected"],
        "objects_written": quiet["objects_written"],
        "symbols_failed": quiet["symbols_failed"] + loaded["symbols_failed"],
        "elapsed_s": quiet["elapsed_s"],
        "achieved_ratio_quiet": quiet["achieved_ratio"],
        "achieved_ratio_loaded": loaded["achieved_ratio"],
        "loaded_run": loaded,
        "targets": {
            "objects_written": "<= 100",
            "achieved_ratio_quiet": ">= 0.95",
            "achieved_ratio_loaded": ">= 0.9",
            "http_429": "== 0",
        },
    }
    result["target_met"] = (
        quiet["objects_written"] <= 100
        and quiet["achieved_ratio"] >= 0.95
        and loaded["achieved_ratio"] >= 0.9
        and result["http_429"] == 0
        and quiet["ok"]
        and loaded["ok"]
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "batch.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    log.info(
        "batch bench: %s of the budget quiet, %s with a core busy, %s objects, %s http 429",
        result["achieved_ratio_quiet"],
        result["achieved_ratio_loaded"],
        result["objects_written"],
        result["http_429"],
    )
    return result
