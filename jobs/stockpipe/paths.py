"""Where stockpipe keeps downloads, builds and the state of local services."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Downloads and builds (Kafka jars, MinIO, helm, ...), kept across runs."""
    base = os.environ.get("STOCKPIPE_CACHE_DIR") or str(Path.home() / ".cache" / "stockpipe")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def state_dir() -> Path:
    """Pids, ports and data of the services started by `stockpipe services up`."""
    base = os.environ.get("STOCKPIPE_STATE_DIR") or str(cache_dir() / "run")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def bin_dir() -> Path:
    path = cache_dir() / "bin"
    path.mkdir(parents=True, exist_ok=True)
    return path
