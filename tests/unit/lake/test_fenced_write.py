"""Lake.write_new on a local directory: the first write of a name wins, a retry is a no-op, nothing is overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockpipe.lake.store import Lake, ObjectConflict
from stockpipe.settings import LakeSettings
from tests.unit.lake.racing import race

KEY = "raw/quotes/dt=2026-11-27/quotes+0+00000000000000000000+00000000000000000099.parquet"


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(LakeSettings(url=f"file://{tmp_path / 'lake'}"))


def test_first_write_wins_and_identical_retry_is_a_no_op(lake: Lake) -> None:
    assert lake.write_new(KEY, b"first") is True
    assert lake.write_new(KEY, b"first") is False  # a retry whose answer was lost
    with pytest.raises(ObjectConflict):
        lake.write_new(KEY, b"a zombie's other bytes")
    assert lake.read(KEY) == b"first"
    assert [o.key for o in lake.walk("raw")] == [KEY]  # no temporary left behind
    assert not list(Path(lake.root).rglob("*.tmp"))


def test_racing_writers_leave_exactly_one_winner(lake: Lake) -> None:
    outcomes = race(lake, KEY)
    assert outcomes.count("created") == 1
    assert outcomes.count("fenced") == 15
    winner = outcomes.index("created")
    assert lake.read(KEY) == f"writer {winner}".encode()
