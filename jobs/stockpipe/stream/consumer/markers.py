"""The crash-loop marker protocol: a marker in the committed offset's metadata survives a crash.

See the package docstring: a partition whose last owner died is checked carefully, in chunks, each
under a marker naming it; a message that kills `crash_loop_restarts` incarnations is dead-lettered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from stockpipe.stream.consumer.core import _Core

log = logging.getLogger("stockpipe.consumer")

_MARKER = "stockpipe-crash-marker/1:"

_CAREFUL_CHUNK = 64


@dataclass
class _Careful:
    """A partition whose previous incarnation died (no clean exit) while it was checking [lo, hi]."""

    lo: int
    hi: int
    crashes: int  # incarnations in a row that died on this partition's watch
    quarantine: int | None = None  # the offset to dead-letter as crashed_consumer, unparsed
    probe: tuple[int, int] | None = None  # what is being checked now

    @property
    def chunk(self) -> int:
        return 1 if self.hi - self.lo < _CAREFUL_CHUNK else _CAREFUL_CHUNK


def _marker(crashes: int, probe: tuple[int, int] | None) -> str:
    return _MARKER + orjson.dumps({"n": crashes, "probe": probe}).decode()


def _read_marker(metadata: str | None) -> tuple[int, tuple[int, int] | None] | None:
    """(crashes so far, the offsets being checked when it died) from a committed offset's metadata."""
    if not metadata or not metadata.startswith(_MARKER):
        return None
    try:
        m = orjson.loads(metadata.removeprefix(_MARKER))
        probe = m.get("probe")
        return int(m["n"]), (int(probe[0]), int(probe[1])) if probe else None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError):
        return None


class CrashMarkers(_Core):
    def _mark_start(
        self,
        consumer: Consumer,
        topic: str,
        partition: int,
        start: int,
        last: tuple[int, tuple[int, int] | None] | None,
    ) -> None:
        """Read the last owner's marker: a crash on its watch makes this partition careful. Then mark the start."""
        key = (topic, partition)
        self._careful.pop(key, None)
        if last is not None and last[1] is None:
            try:
                end = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
            except KafkaException:
                end = None
            if end is not None and start >= end:
                last = None  # nothing past the start: whatever killed the last owner, it was not this partition
        if last is None:  # a clean exit (or a first start) before us
            self._commit_marker(consumer, topic, partition, start, _marker(0, None))
            return
        crashes, probe = last[0] + 1, last[1]
        s = self.settings
        lo, hi = probe or (start, start + s.max_records_per_file + (s.checker_threads + 2) * s.batch_size)
        careful = self._careful[key] = _Careful(lo, hi, crashes, probe=probe)
        if crashes > s.crash_loop_restarts and lo == hi:
            careful.quarantine = lo
        log.error(
            "%s[%d]: its last owner died while checking %s (crash %d in a row): offsets %d..%d checked carefully%s",
            topic,
            partition,
            f"offsets {probe[0]}..{probe[1]}" if probe else f"from offset {start}",
            crashes,
            lo,
            hi,
            f"; offset {lo} goes to the dead-letter topic as crashed_consumer"
            if careful.quarantine is not None
            else "",
        )
        self._commit_marker(consumer, topic, partition, start, _marker(crashes, probe))

    def _commit_marker(self, consumer: Consumer, topic: str, partition: int, offset: int, metadata: str) -> None:
        """A synchronous commit of an offset already safe to commit, for its metadata (survives a crash)."""
        try:
            consumer.commit(offsets=[TopicPartition(topic, partition, offset, metadata=metadata)], asynchronous=False)
            self._committed[(topic, partition)] = offset
        except KafkaException as exc:
            log.warning("crash marker for %s[%d] not committed (%s)", topic, partition, exc.args[0].name())

    def _marker_of(self, key: tuple[str, int]) -> str:
        careful = self._careful.get(key)
        return _marker(careful.crashes, careful.probe) if careful else _marker(0, None)

    def _clear_markers(self) -> None:
        """A clean hand-over: no crash at these starts."""
        for (topic, partition), offset in list(self._committed.items()):
            if (topic, partition) in self.partitions:
                self._commit_marker(self.consumer, topic, partition, offset, "")
        self._careful.clear()

    def _careful_pass(self, msgs: list[Message]) -> None:
        """A poll with messages of careful partitions: those in their careful range in chunks, each under a marker."""
        self._complete_pending()  # nothing in flight
        by_key: dict[tuple[str, int], list[Message]] = {}
        rest: list[Message] = []
        for m in msgs:
            key = (m.topic() or "", m.partition() or 0)
            (by_key.setdefault(key, []) if key in self._careful else rest).append(m)
        if rest:
            self._complete(self._prepare(rest))
        for key, part in by_key.items():
            careful = self._careful.get(key)
            i = 0
            while careful is not None and i < len(part):
                offset = int(part[i].offset() or 0)
                if offset > careful.hi:
                    break
                chunk = [m for m in part[i : i + careful.chunk] if int(m.offset() or 0) <= careful.hi]
                careful.probe = (offset, int(chunk[-1].offset() or 0))
                start = self._committed.get(key)
                if start is not None:
                    self._commit_marker(self.consumer, key[0], key[1], start, self._marker_of(key))
                self._complete(self._prepare(chunk))
                i += len(chunk)
                careful = self._careful.get(key)  # a revoke may have ended it
            if careful is not None and (
                i < len(part) or (careful.probe is not None and careful.probe[1] >= careful.hi)
            ):
                del self._careful[key]  # past the careful range: back to full batches
                start = self._committed.get(key)
                if start is not None:
                    self._commit_marker(self.consumer, key[0], key[1], start, _marker(0, None))
            if i < len(part):
                self._complete(self._prepare(part[i:]))
