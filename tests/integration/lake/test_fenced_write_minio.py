"""Lake.write_new on MinIO: a conditional PUT (If-None-Match: *) refuses to replace an object."""

from __future__ import annotations

import pytest

from stockpipe.lake.store import Lake, ObjectConflict
from stockpipe.settings import LakeSettings
from tests.unit.lake.racing import race

KEY = "raw/quotes/dt=2026-11-27/quotes+0+00000000000000000000+00000000000000000099.parquet"


def test_conditional_put_refuses_other_bytes_and_accepts_a_retry(s3_lake: LakeSettings) -> None:
    lake = Lake(s3_lake)
    assert lake.write_new(KEY, b"first") is True
    etag = next(lake.walk("raw")).etag
    assert lake.write_new(KEY, b"first") is False
    with pytest.raises(ObjectConflict):
        lake.write_new(KEY, b"a zombie's other bytes")
    assert lake.read(KEY) == b"first"
    assert next(lake.walk("raw")).etag == etag  # not even rewritten with the same bytes


def test_racing_puts_leave_exactly_one_winner(s3_lake: LakeSettings) -> None:
    lake = Lake(s3_lake)

    outcomes = race(lake, KEY)
    assert outcomes.count("created") == 1, outcomes
    assert lake.read(KEY) == f"writer {outcomes.index('created')}".encode()
