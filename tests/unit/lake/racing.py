"""Writers racing for one lake object name (shared by the local and the MinIO tests)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from stockpipe.lake.store import Lake, ObjectConflict


def race(lake: Lake, key: str, writers: int = 16) -> list[str]:
    """Each writer tries its own bytes under key; what each was told: created, identical or fenced."""

    def write(i: int) -> str:
        try:
            return "created" if lake.write_new(key, f"writer {i}".encode()) else "identical"
        except ObjectConflict:
            return "fenced"

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(write, range(writers)))
