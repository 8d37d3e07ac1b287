"""Batches: column-wise preparation of a poll, checking on checker threads, and routing to files."""

from __future__ import annotations

import logging
import operator
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from confluent_kafka import KafkaError, KafkaException, Message

from stockpipe.stream.consumer.core import _Core, _TopicPlan
from stockpipe.stream.consumer.fence import _Fenced
from stockpipe.stream.consumer.settings import BUFFERED, MESSAGES
from stockpipe.stream.validation import CheckedBatch, pick

log = logging.getLogger("stockpipe.consumer")
_SECOND = operator.itemgetter(1)


def _timestamps_ms(msgs: Sequence[Message]) -> np.ndarray:
    """The Kafka records' own timestamps (ms; <= 0 when a record has none), mapped in C."""
    return np.fromiter(map(_SECOND, map(Message.timestamp, msgs)), dtype=np.int64, count=len(msgs))


class _TopicBatch:
    """The messages of one topic in one poll, on their way through the checker.

    Checking (Arrow parsing and compute, which release the GIL) runs on a thread of its own while the
    main thread polls the next batch; everything that changes state (dead letters, files, offsets)
    stays on the main thread, in poll order.
    """

    def __init__(
        self,
        topic: str,
        plan: _TopicPlan,
        msgs: list[Message],
        values: list[bytes | None],
        keys: list[bytes | None],
        partitions: np.ndarray,
        offsets: np.ndarray,
        mine: np.ndarray | None,
        quarantine: frozenset[tuple[int, int]] = frozenset(),
    ) -> None:
        self.topic, self.plan = topic, plan
        self.quarantine = quarantine  # (partition, offset) to dead-letter as crashed_consumer, unparsed
        self._all = (msgs, values, keys)
        self._mine = mine
        self.all_partitions = partitions if mine is None else partitions[mine]
        self.all_offsets = offsets if mine is None else offsets[mine]
        self._partitions, self._offsets = partitions, offsets
        # What select() keeps: the fresh messages of this topic.
        self.fresh = np.zeros(0, dtype=bool)
        self.values: Sequence[bytes | None] = []
        self._keys: Sequence[bytes | None] = []
        self._msgs: Sequence[Message] = []
        self.partitions, self.offsets = self.all_partitions, self.all_offsets
        self._future: Future[CheckedBatch] | None = None

    def select(self, fresh: np.ndarray) -> bool:
        """Keep the fresh messages; False when none is."""
        self.fresh = fresh
        msgs, values, keys = self._all
        idx = np.flatnonzero(fresh) if self._mine is None else np.flatnonzero(self._mine)[fresh]
        if not len(idx):
            return False
        self.values, self._keys, self._msgs = pick(values, idx), pick(keys, idx), pick(msgs, idx)
        self.partitions, self.offsets = self._partitions[idx], self._offsets[idx]
        return True

    def _check(self) -> CheckedBatch:
        values = self.values
        held: dict[tuple[int, int], bytes | None] = {}
        if self.quarantine:
            pairs = list(zip(self.partitions.tolist(), self.offsets.tolist(), strict=True))
            held = {pair: values[i] for i, pair in enumerate(pairs) if pair in self.quarantine}
            if held:
                values = [b"" if pair in held else v for pair, v in zip(pairs, values, strict=True)]
        checked = self.plan.validator.check(
            values, self._keys, self.partitions, self.offsets, _timestamps_ms(self._msgs)
        )
        for r in checked.rejects:
            if (r.partition, r.offset) in held:
                r.reason, r.value = "crashed_consumer", held[(r.partition, r.offset)]  # never parsed again
        return checked

    def start(self, checker: ThreadPoolExecutor | None) -> None:
        if checker is None:
            future: Future[CheckedBatch] = Future()
            future.set_result(self._check())
            self._future = future
        else:
            self._future = checker.submit(self._check)

    def result(self) -> CheckedBatch:
        assert self._future is not None
        return self._future.result()


class Batches(_Core):
    def _process(self, msgs: list[Message]) -> None:
        """Check and route one batch, start to end."""
        self._complete(self._prepare(msgs))

    def _prepare(self, msgs: list[Message]) -> list[_TopicBatch]:
        """Pick what is new in a batch, per topic, and start checking it on the checker thread."""
        # Column-wise from the start: each accessor is mapped over the batch as an unbound method (a C
        # loop, no bound-method or tuple per message), since per-message Python is the cost here.
        # Errors and timestamps are looked at only where needed (a None value; a rejected message).
        values: list[bytes | None] = list(map(Message.value, msgs))
        if None in values:
            msgs = self._drop_errors(msgs, values)
            if not msgs:
                return []
            values = list(map(Message.value, msgs))
        n = len(msgs)
        topics = list(map(Message.topic, msgs))
        keys: list[bytes | None] = list(map(Message.key, msgs))
        partitions = np.fromiter(map(Message.partition, msgs), dtype=np.int64, count=n)
        offsets = np.fromiter(map(Message.offset, msgs), dtype=np.int64, count=n)
        topic_names = set(topics)
        batches = []
        for topic in topic_names:
            plan = self.plans.get(topic or "")
            if plan is None or topic is None:
                continue
            mine = np.asarray(topics, dtype=object) == topic if len(topic_names) > 1 else None
            quarantine = frozenset(
                (p, c.quarantine) for (t, p), c in self._careful.items() if t == topic and c.quarantine is not None
            )
            batch = _TopicBatch(topic, plan, msgs, values, keys, partitions, offsets, mine, quarantine)
            if batch.select(self._fresh(topic, batch.all_partitions, batch.all_offsets)):
                batch.start(self._checker)
                batches.append(batch)
        return batches

    def _fresh(self, topic: str, partitions: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Which messages are new to this incarnation: not yet seen (a redelivery after a seek) and still ours."""
        fresh = np.zeros(len(partitions), dtype=bool)
        for (t, p), state in self.partitions.items():
            if t == topic:
                fresh |= (partitions == p) & (offsets >= state.position)
        return fresh

    def _complete(self, batches: list[_TopicBatch]) -> None:
        """Dead letters and lake files for prepared batches, in order."""
        for batch in batches:
            fresh = self._fresh(batch.topic, batch.all_partitions, batch.all_offsets)
            if not np.array_equal(fresh, batch.fresh):
                # Positions or ownership moved since the batch was prepared (a rebalance): pick again.
                batch.result()
                if not batch.select(fresh):
                    continue
                batch.start(None)
            checked = batch.result()
            for r in checked.rejects:
                if r.reason == "crashed_consumer" and (careful := self._careful.get((batch.topic, r.partition))):
                    careful.quarantine = None
            MESSAGES.labels(batch.topic).inc(len(batch.values))
            self.stats.messages += len(batch.values)
            self._send_dead_letters(batch.topic, checked.rejects)
            self._route(batch.topic, checked, batch.partitions, batch.offsets)

    def _complete_pending(self, keep: int = 0) -> None:
        """Complete polled batches, oldest first, until `keep` are left in flight."""
        while len(self._pending) > keep:
            self._complete(self._pending.popleft())

    def _drop_errors(self, msgs: list[Message], values: list[bytes | None]) -> list[Message]:
        """Consumer errors arrive as messages without a value: raise the fatal ones, log and skip the rest."""
        bad = [i for i, v in enumerate(values) if v is None and msgs[i].error() is not None]
        for i in bad:
            err = msgs[i].error()
            assert err is not None
            if err.fatal():
                raise KafkaException(err)
            log.warning("consumer error: %s", err)
            if err.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE):
                self._failed("kafka-unreachable", f"Kafka ({self.settings.kafka.bootstrap_servers}) unreachable: {err}")
        skip = set(bad)
        return [m for i, m in enumerate(msgs) if i not in skip] if skip else msgs

    def _route(self, topic: str, checked: CheckedBatch, partitions: np.ndarray, offsets: np.ndarray) -> None:
        valid = checked.valid
        present = np.unique(partitions)
        if len(present) > 1:
            # One stable sort by partition, then a zero-copy slice per partition (offset order kept).
            part_col = valid["kafka_partition"].to_numpy()
            if np.any(part_col[1:] < part_col[:-1]):
                order = np.argsort(part_col, kind="stable")
                valid, part_col = valid.take(order), part_col[order]
            bounds = np.searchsorted(part_col, present, side="left"), np.searchsorted(part_col, present, side="right")
        for i, p in enumerate(present):
            state = self.partitions.get((topic, int(p)))
            if state is None:
                continue
            rows = valid if len(present) == 1 else valid.slice(bounds[0][i], bounds[1][i] - bounds[0][i])
            marks = [(w.offset, w.ts) for w in checked.watermarks if w.partition == p]
            try:
                state.add(rows, marks)
            except _Fenced as fenced:
                self._give_up(state, fenced)
                continue
            state.position = int(offsets[partitions == p].max()) + 1
            if state.buffered == 0 and state.position > state.next_offset:
                # Nothing open: rejects and watermarks past the last object may be committed too.
                self._to_commit[(topic, int(p))] = state.position
        BUFFERED.set(sum(s.buffered for s in self.partitions.values()))
