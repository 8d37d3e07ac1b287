"""Watermarks at every session-window boundary, so the consumer closes a file as soon as its window ends.

A file's record-time window closes when a later record reaches its partition. A live stream is bursty
(a quote is re-published only when its `t` moves, trades once a minute), so without help a file would
wait for the next burst, up to a minute or more. During a session the producer therefore puts a
watermark (record time has reached `now`) in every partition of the stream topics once per window
boundary. Watermarks are records in the log, so every consumer incarnation cuts the same files.
Replays (accelerated, for the demo and tests) do not need them and do not get them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from stockpipe.marketdata import calendar
from stockpipe.stream.publisher import Publisher


class WindowMarks:
    def __init__(self, publisher: Publisher, topics: Sequence[str], every_s: int | None) -> None:
        self.publisher = publisher
        self.topics = list(topics)
        self.every_s = every_s
        self._last: int | None = None

    def until_next(self, now: datetime) -> float:
        """Seconds to the next boundary (inf when disabled)."""
        if not self.every_s:
            return math.inf
        t = now.timestamp()
        return self.every_s - t % self.every_s + 0.05  # just past it: the boundary's records are in

    def mark_if_due(self, now: datetime) -> bool:
        """One watermark per topic partition once each boundary has passed, while the session is open."""
        if not self.every_s or not calendar.is_open(now):
            return False
        boundary = int(now.timestamp()) // self.every_s
        if boundary == self._last:
            return False
        self._last = boundary
        for topic in self.topics:
            self.publisher.watermark(topic, now)
        return True
