"""The zombie fence: a write never replaces another writer's object, and a fenced partition resyncs."""

from __future__ import annotations

import contextlib
import logging
import uuid

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from stockpipe.lake.layout import StreamObject
from stockpipe.lake.store import ObjectConflict
from stockpipe.stream.consumer.core import _Answer, _Core
from stockpipe.stream.consumer.settings import FENCED
from stockpipe.stream.lakewriter import PartitionFiles, find_resume_offset

log = logging.getLogger("stockpipe.consumer")

_NOT_SEEN = 2**62  # the position of a partition waiting to re-read from the lake: nothing in flight is fresh
_NOT_OURS = (KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION)


class _Fenced(_Answer):
    """A lake write refused because another writer holds the partition's data past this object's start."""

    def __init__(self, obj: StreamObject, why: str) -> None:
        super().__init__(f"write of {obj.key} fenced: {why}")
        self.obj = obj


class FenceUnsupported(RuntimeError):
    """The object store overwrote an object under `If-None-Match: *`: the zombie fence would not hold."""


PROBE_PREFIX = "_stockpipe/fence-probe"  # outside raw/: no loader lists it


class Fence(_Core):
    def _check_fence(self) -> None:
        """At start: the store must refuse an overwrite under `If-None-Match: *`, or the fence is void.

        Some S3-compatible stores ignore the header silently, and a zombie's write then replaces the
        newer owner's object. Two writes of different bytes to a scratch key: the second must be refused.
        """
        key = f"{PROBE_PREFIX}/{uuid.uuid4().hex}"

        def probe() -> bool:
            self.lake.write_new(key, b"first")
            try:
                self.lake.write_new(key, b"second")
            except ObjectConflict:
                return True
            finally:
                with contextlib.suppress(Exception):  # a scratch object left over is harmless
                    self.lake.delete(key)
            return False

        if self._with_lake_retries("fence probe", probe):
            log.info("the object store refuses overwrites under If-None-Match: *: the zombie fence holds")
            return
        what = (
            f"the object store ({self.settings.lake.url}) overwrote an object under If-None-Match: *;"
            " the zombie fence does not hold there (a paused consumer could replace a newer owner's object)"
        )
        if not self.settings.run_without_fence:
            raise FenceUnsupported(
                f"{what}. Use a store that honours conditional writes, or set STOCKPIPE_RUN_WITHOUT_FENCE=true"
                " (run_without_fence) to run without the fence anyway"
            )
        log.error("!" * 100)
        log.error("RUNNING WITHOUT THE ZOMBIE FENCE (STOCKPIPE_RUN_WITHOUT_FENCE=true): %s", what)
        log.error("!" * 100)

    def _write_fenced(self, obj: StreamObject, data: bytes) -> None:
        """Write an object unless another writer holds the partition past its start (raises _Fenced)."""
        ahead = find_resume_offset(self.lake, obj.dataset, obj.topic, obj.partition)
        if ahead is not None and ahead > obj.first_offset and not self.lake.exists(obj.key):
            raise _Fenced(obj, f"the lake holds {obj.topic}[{obj.partition}] up to offset {ahead - 1} already")
        try:
            if not self.lake.write_new(obj.key, data):
                log.info("%s is in the lake already with the same bytes (a retry, or another writer): kept", obj.key)
        except ObjectConflict as exc:
            raise _Fenced(obj, "the name is taken by other bytes") from exc

    def _give_up(self, state: PartitionFiles, fenced: _Fenced) -> None:
        """A fenced write: give the batch up, commit nothing for it, and find out whether the partition is ours."""
        FENCED.inc()
        key = (state.topic, state.partition)
        rows = state.buffered
        state.drop()
        self._to_commit.pop(key, None)
        if not self._still_owner(key):
            log.warning(
                "%s; %s[%d] belongs to another consumer now: %d rows given up, nothing committed", fenced, *key, rows
            )
            self._forget([TopicPartition(*key)], "fenced")
            return
        log.warning("%s; %d rows given up, nothing committed; %s[%d] re-reads from the lake", fenced, rows, *key)
        state.position = _NOT_SEEN  # what is in flight for it is stale now
        self._resync.add(key)

    def _still_owner(self, key: tuple[str, int]) -> bool:
        """Ask the group (a synchronous commit of what is committed already) whether a partition is still ours."""
        offset = self._committed.get(key)
        if offset is None:
            return True  # nothing to ask with; re-reading from the lake is safe either way
        try:
            self.consumer.commit(
                offsets=[TopicPartition(*key, offset, metadata=self._marker_of(key))], asynchronous=False
            )
        except KafkaException as exc:
            return exc.args[0].code() not in _NOT_OURS
        return True

    def _resync_partitions(self) -> None:
        """Fenced partitions that are still ours resume after the lake's newest object, like an assignment."""
        self._complete_pending()  # nothing older in flight: what the seek re-reads comes next, in order
        for key in sorted(self._resync):
            state = self.partitions.get(key)
            if state is None:
                continue
            resume = self._with_lake_retries(
                f"lookup of {key[0]}[{key[1]}]",
                lambda: find_resume_offset(self.lake, state.schema.dataset, *key),  # noqa: B023
            )
            state.next_offset = state.position = resume or 0
            try:
                self.consumer.seek(TopicPartition(*key, state.position))
            except KafkaException as exc:
                log.warning("seek of %s[%d] failed (%s); it is left to the next assignment", *key, exc)
                self._forget([TopicPartition(*key)], "unseekable")
                continue
            log.info("%s[%d] re-reads from offset %d (the lake's resume point)", *key, state.position)
        self._resync.clear()
