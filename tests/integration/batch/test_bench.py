from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from stockpipe.marketdata import calendar
from stockpipe_dev.bench.batch import bench_symbols, run_batch_bench


def test_bench_writes_its_numbers(tmp_path: Path) -> None:
    result = run_batch_bench(tmp_path, symbols=5, budget_per_min=6000, end=date(2025, 11, 28))
    stored = json.loads((tmp_path / "batch.json").read_text())
    assert stored == result
    assert {"symbols", "calls", "budget_per_min", "achieved_per_min", "http_429"} <= set(stored)
    assert {"objects_written", "achieved_ratio_quiet", "achieved_ratio_loaded"} <= set(stored)
    assert (stored["symbols"], stored["calls"], stored["http_429"]) == (5, 5, 0)
    assert stored["loaded_run"]["calls"] == 5  # the second run, with a core kept busy
    assert stored["bars_written"] == 5 * len(calendar.sessions_between(date(2025, 1, 1), date(2025, 11, 28)))
    assert stored["objects_written"] == 1


def test_bench_symbols_are_distinct_tickers() -> None:
    names = bench_symbols(500)
    assert len(set(names)) == 500
    assert names[:2] == ["AAA", "AAB"]
