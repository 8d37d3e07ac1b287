"""Dead letters: rejected messages to the dead-letter topic, watermarks in it, and the rate alert.

Every dead letter has a delivery report. Until it reports success the letter is outstanding: no
offset at or past it is committed and no lake object covering it is written (the lake is the resume
point, so an object past it would skip it on restart). A refused letter (authorisation, size, message
timeout) is counted, alerted on, and produced again with back-off, never dropped; meanwhile its
partition makes no progress past it (the loop waits at the first object that would cover it, as it
waits for the lake in an outage: simpler than pausing one partition, and the cause is topic-wide).
A letter is cut to the topic's `max.message.bytes` (the original's bytes truncated, and its reason
saying so).
"""

from __future__ import annotations

import base64
import functools
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from confluent_kafka import KafkaError, KafkaException, Message
from tenacity import Retrying, retry_if_result, stop_when_event_set, wait_exponential

from stockpipe.contracts.messages import DLQ_V1, WATERMARK_V1, iso
from stockpipe.stream.consumer.core import _Core, _Stopped
from stockpipe.stream.consumer.settings import DLQ, DLQ_OUTSTANDING, DLQ_REFUSED
from stockpipe.stream.validation import Reject

log = logging.getLogger("stockpipe.consumer")

# Room in a dead letter for what is not the original: JSON fields, key, headers, record and batch framing.
_FRAMING = 16 * 1024
_MAX_KEY_CHARS = 1024
REFUSED_INCIDENT = "dead-letters-refused"


@dataclass
class _Letter:
    source: tuple[str, int]
    offset: int
    key: bytes
    value: bytes
    reason: str
    refused: str | None = None  # the last refusal, while the letter waits to be produced again
    refusals: int = 0


def dead_letter(topic: str, r: Reject, max_bytes: int) -> tuple[bytes, str]:
    """A reject as a dlq.v1 value of at most `max_bytes` (minus framing), and its reason."""
    original = r.value or b""
    key = r.key.decode("utf-8", "replace") if r.key is not None else None
    reason = r.reason
    if key is not None and len(key) > _MAX_KEY_CHARS:
        reason += f" (original key truncated: first {_MAX_KEY_CHARS} of {len(key)} characters)"
        key = key[:_MAX_KEY_CHARS]
    value = {
        "schema": DLQ_V1.name,
        "reason": reason,
        "source_topic": topic,
        "source_partition": r.partition,
        "source_offset": r.offset,
        "original_b64": "",
        "original_key": key,
        "detected_at": iso(datetime.fromtimestamp(max(r.timestamp_ms, 0) / 1000, UTC)),
    }
    room = (max_bytes - _FRAMING - len(orjson.dumps(value)) - 200) * 3 // 4  # 200: the reason's note below
    if len(original) > room:
        reason += f" (original truncated to fit the dead-letter topic: first {room} of {len(original)} bytes)"
        value["reason"] = reason
        original = original[: max(room, 0)]
    value["original_b64"] = base64.b64encode(original).decode()
    return orjson.dumps(value), reason


class DeadLetters(_Core):
    def _check_dead_letter_rate(self) -> None:
        """Dead letters per message over the last dlq_alert_min_messages or more, against the threshold.

        Checked at heartbeats; the count accumulates across them until it is large enough to judge, so a
        slow stream (few messages a heartbeat) is judged too and the verdict does not hang on the timing.
        """
        messages, letters = self.stats.messages, self.stats.dead_letters
        seen, dead = messages - self._rate_mark[0], letters - self._rate_mark[1]
        if seen < self.settings.dlq_alert_min_messages:
            return
        self._rate_mark = (messages, letters)
        if dead / seen > self.settings.dlq_alert_ratio:
            self.alerter.incident(
                "dead-letter-rate",
                f":warning: stockpipe consumer: {dead} of {seen} messages went to the dead-letter topic"
                f" ({dead / seen:.1%}, threshold {self.settings.dlq_alert_ratio:.1%}): a producer sends bad data",
                kind="consumer",
            )
        else:
            self.alerter.resolve("dead-letter-rate", ":white_check_mark: stockpipe consumer: dead-letter rate normal")

    def _send_dead_letters(self, topic: str, rejects: list[Reject]) -> None:
        if topic == self.settings.kafka.topic_dlq:
            for r in rejects:  # never loop a dead letter back into its own topic
                log.error("unreadable dead letter at %s[%d]@%d: %s", topic, r.partition, r.offset, r.reason)
            return
        for r in rejects:
            value, reason = dead_letter(topic, r, self.settings.dlq_max_message_bytes)
            letter = _Letter(
                (topic, r.partition), r.offset, f"{topic}/{r.partition}/{r.offset}".encode(), value, reason
            )
            self._letters[(topic, r.partition, r.offset)] = letter
            self._produce_letter(letter)
            self._dlq_unmarked = True
            DLQ.labels(topic, r.reason.split(":", 1)[0]).inc()
            self.stats.dead_letters += 1
            log.warning("dead letter %s[%d]@%d: %s", topic, r.partition, r.offset, r.reason)
        DLQ_OUTSTANDING.set(len(self._letters))

    def _produce_letter(self, letter: _Letter) -> None:
        headers: list[tuple[str, str | bytes | None]] = [("reason", letter.reason.encode())]
        while True:
            try:
                self.dlq.produce(
                    self.settings.kafka.topic_dlq,
                    letter.value,
                    key=letter.key,
                    headers=headers,
                    on_delivery=functools.partial(self._letter_delivered, letter),
                )
                return
            except BufferError:
                self.dlq.poll(0.5)
            except KafkaException as exc:  # refused before it left (e.g. over message.max.bytes)
                self._letter_delivered(letter, exc.args[0], None)
                return

    def _letter_delivered(self, letter: _Letter, err: KafkaError | None, _msg: Message | None) -> None:
        """The delivery report of one dead letter (called from poll/flush, on this thread)."""
        key = (*letter.source, letter.offset)
        if self._letters.get(key) is not letter:
            return  # its partition was handed over: the next owner sends it again
        if err is None:
            del self._letters[key]
            if letter.refused is not None:
                log.info("dead letter %s[%d]@%d delivered after a refusal", *letter.source, letter.offset)
            if not any(x.refused for x in self._letters.values()):
                self._recovered_letters()
        else:
            letter.refused = err.name()
            letter.refusals += 1
            DLQ_REFUSED.labels(err.name()).inc()
            # Once per letter at error level: it is retried every few seconds while the topic refuses.
            (log.error if letter.refusals == 1 else log.debug)(
                "dead letter for %s[%d]@%d refused (%s): %s[%d] holds at it and it is sent again",
                *letter.source,
                letter.offset,
                err.str(),
                *letter.source,
            )
            self._refused_since = self._refused_since or time.monotonic()
            self.alerter.incident(
                REFUSED_INCIDENT,
                f":rotating_light: stockpipe consumer: the dead-letter topic ({self.settings.kafka.topic_dlq}) refuses"
                f" dead letters ({err.name()}): their partitions make no progress until it takes them",
                kind="consumer",
            )
        DLQ_OUTSTANDING.set(len(self._letters))

    def _recovered_letters(self) -> None:
        if self._refused_since is not None or REFUSED_INCIDENT in self.alerter.open_incidents:
            self._refused_since = None
            self.alerter.resolve(
                REFUSED_INCIDENT,
                ":white_check_mark: stockpipe consumer: the dead-letter topic takes dead letters again",
            )

    def _letters_below(self, source: tuple[str, int], offset: int) -> int | None:
        """The lowest offset of the partition's outstanding dead letters at or below `offset`, if any."""
        return min(
            (x.offset for x in self._letters.values() if x.source == source and x.offset <= offset), default=None
        )

    def _commit_cap(self, source: tuple[str, int], offset: int) -> int:
        """How far a commit may go: never past an outstanding dead letter."""
        held = self._letters_below(source, offset - 1)
        return offset if held is None else held

    def _hold_for_dead_letters(self, source: tuple[str, int], last_offset: int) -> None:
        """Wait (serving delivery reports, sending refused letters again) until no letter up to last_offset is out."""
        if self._letters_below(source, last_offset) is None:
            return

        def attempt() -> bool:
            for letter in [x for x in self._letters.values() if x.refused is not None]:
                letter.refused = None  # sent again; its report comes back through _letter_delivered
                self._produce_letter(letter)
            self.dlq.flush(5)
            return self._letters_below(source, last_offset) is not None

        def serve(seconds: float) -> None:
            self.dlq.poll(seconds)  # delivery reports are served while waiting

        with self._outage("dead-letters"):
            Retrying(
                retry=retry_if_result(bool),
                wait=wait_exponential(multiplier=0.5, max=10),
                stop=stop_when_event_set(self.stop_event),
                sleep=serve,
                retry_error_callback=lambda state: True,  # stopped: answered below
            )(attempt)
        if self._letters_below(source, last_offset) is not None:
            raise _Stopped(f"stopping while {source[0]}[{source[1]}] waits for a dead letter")

    def _mark_dead_letters(self) -> None:
        """Dead letters are rare, so time in their topic is moved on by watermarks we put in it ourselves.

        The watermark is in the log, so every incarnation closes the same DLQ files.
        """
        if not self._dlq_unmarked:
            return
        topic = self.settings.kafka.topic_dlq
        value = orjson.dumps({"schema": WATERMARK_V1, "watermark_ts": iso(datetime.now(UTC))})
        for p in self.dlq.list_topics(topic, timeout=10).topics[topic].partitions:
            self.dlq.produce(topic, value, partition=p)
        self._dlq_unmarked = False
