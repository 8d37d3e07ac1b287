"""Checks on what the consumer left in the lake."""

from __future__ import annotations

import itertools

from stockpipe.lake.layout import StreamObject


def assert_no_overlap(objects: list[StreamObject]) -> None:
    """Per partition, every object starts after the one before it ends: no record is in two objects."""
    per_partition: dict[tuple[str, int], list[StreamObject]] = {}
    for o in sorted(objects, key=lambda o: o.first_offset):
        per_partition.setdefault((o.topic, o.partition), []).append(o)
    for objs in per_partition.values():
        for a, b in itertools.pairwise(objs):
            assert b.first_offset > a.last_offset, f"{b.key} overlaps {a.key}"
