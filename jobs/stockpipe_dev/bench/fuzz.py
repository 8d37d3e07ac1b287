"""Fuzzing the consumer's batch path: arbitrary bytes and JSON values, alone and among good quotes.

The target is the consumer's own code from a poll on: `LakeConsumer._prepare` (checker threads,
Arrow's JSON reader) and `_complete` (dead letters, routing into `PartitionFiles`, Parquet files),
fed with real `confluent_kafka.Message` objects. Only the two ends that need a broker are replaced:
dead letters and flushed files are recorded instead of produced and written. It runs in a child
process, so that a crash inside a C extension (the SIGSEGV a leading `null` caused in pyarrow's JSON
reader) or a hang is observed rather than suffered: the parent sees the child die or stop answering,
records the batch, and starts a new child. Every message must end up exactly once as a row, a dead
letter or a watermark: anything else is a silent drop (or a duplicate) and is reported.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import random
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

import orjson

Batch = list[tuple[bytes | None, bytes | None]]  # (value, key) pairs, in partition order
TOPIC = "quotes-fuzz"
PARTITIONS = 2


@dataclass
class Verdict:
    ok: bool
    kind: str = ""  # "", "crash", "hang", "drop", "duplicate", "error"
    detail: str = ""


@dataclass
class FuzzReport:
    inputs: int = 0
    batches: int = 0
    crashes: int = 0
    hangs: int = 0
    silent_drops: int = 0
    duplicates: int = 0
    errors: int = 0
    rows: int = 0
    dead_letters: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)  # the first few, with their batch (base64)
    seconds: float = 0.0


# -- the child: the consumer's batch path ---------------------------------------------------------
def _serve(conn: Connection) -> None:  # pragma: no cover - runs in the child process
    """Check batches sent over `conn` with the consumer's own code; answer with what became of each message."""
    from confluent_kafka import Message

    from stockpipe.contracts.messages import QUOTE_V1
    from stockpipe.lake.layout import StreamObject
    from stockpipe.settings import KafkaSettings, LakeSettings
    from stockpipe.stream.consumer import ConsumerSettings, LakeConsumer
    from stockpipe.stream.consumer.deadletters import _Letter
    from stockpipe.stream.lakewriter import PartitionFiles

    seen: list[tuple[str, int, int]] = []  # (what, partition, offset)

    class RecordingConsumer(LakeConsumer):
        def _produce_letter(self, letter: _Letter) -> None:
            value = orjson.loads(letter.value)
            seen.append(("dlq:" + letter.reason, int(value["source_partition"]), int(value["source_offset"])))
            self._letter_delivered(letter, None, None)  # acknowledged: nothing waits for it

    def flushed(obj: StreamObject, data: bytes, rows: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        for offset in pq.read_table(pa.BufferReader(data), columns=["kafka_offset"])["kafka_offset"].to_pylist():
            seen.append(("row", obj.partition, int(offset)))

    workdir = tempfile.mkdtemp(prefix="stockpipe-fuzz-")
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:9", topic_quotes=TOPIC)
    settings = ConsumerSettings(
        kafka=kafka, lake=LakeSettings(url=f"file://{workdir}"), metrics_port=0, checker_threads=2
    )
    consumer = RecordingConsumer(settings)
    for p in range(PARTITIONS):
        consumer.partitions[(TOPIC, p)] = PartitionFiles(
            schema=QUOTE_V1,
            topic=TOPIC,
            partition=p,
            next_offset=0,
            position=0,
            max_records=1_000_000,  # rows stay buffered, where they are counted (no Parquet per batch)
            window_s=60,
            flush=flushed,
        )
    next_offset = [0] * PARTITIONS
    stamp = int(time.time() * 1000)
    while True:
        try:
            batch: Batch = conn.recv()
        except EOFError:
            return
        msgs = []
        for i, (value, key) in enumerate(batch):
            p = i % PARTITIONS
            msgs.append(
                Message(topic=TOPIC, partition=p, offset=next_offset[p], key=key, value=value, timestamp=(1, stamp))
            )
            next_offset[p] += 1
        seen.clear()
        pending = [consumer._prepare(msgs)]
        marks = 0
        for batches in pending:
            for b in batches:
                marks += len(b.result().watermarks)
            consumer._complete(batches)
        for p, state in ((p, consumer.partitions[(TOPIC, p)]) for p in range(PARTITIONS)):
            for table in state._tables:
                seen.extend(("row", p, int(o)) for o in table["kafka_offset"].to_pylist())
            state.drop()  # counted: the next batch starts with an empty buffer (its position is kept)
        expected = sorted((m.partition(), m.offset()) for m in msgs)
        got = sorted((p, o) for _, p, o in seen)
        reasons: dict[str, int] = {}
        for what, _, _ in seen:
            reasons[what] = reasons.get(what, 0) + 1
        conn.send({"expected": expected, "got": got, "marks": marks, "reasons": reasons})


class FuzzHarness:
    """The parent side: one child at a time, restarted after a crash or a hang."""

    def __init__(self, timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_serve, args=(child,), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None:
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(10)
        self._proc = self._conn = None

    def __enter__(self) -> FuzzHarness:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def run(self, batch: Batch, report: FuzzReport) -> Verdict:
        if self._conn is None:
            self._start()
        assert self._conn is not None
        assert self._proc is not None
        report.batches += 1
        try:
            self._conn.send(batch)
            if not self._conn.poll(self.timeout_s):
                verdict = Verdict(False, "hang", f"no answer in {self.timeout_s:.0f} s")
                self._proc.kill()
            else:
                answer = self._conn.recv()
                verdict = self._judge(answer, report)
        except (EOFError, BrokenPipeError, ConnectionResetError):
            self._proc.join(10)
            verdict = Verdict(False, "crash", f"the consumer's batch path died (exit code {self._proc.exitcode})")
        if verdict.kind in ("crash", "hang"):
            self.close()
        if not verdict.ok:
            setattr(report, _COUNTERS[verdict.kind], getattr(report, _COUNTERS[verdict.kind]) + 1)
            if len(report.failures) < 20:
                report.failures.append(
                    {
                        "kind": verdict.kind,
                        "detail": verdict.detail,
                        "batch_b64": [base64.b64encode(v or b"").decode() for v, _ in batch],
                    }
                )
        return verdict

    @staticmethod
    def _judge(answer: dict[str, Any], report: FuzzReport) -> Verdict:
        expected, got = [tuple(x) for x in answer["expected"]], [tuple(x) for x in answer["got"]]
        for reason, count in answer["reasons"].items():
            report.reasons[reason] = report.reasons.get(reason, 0) + count
            if reason == "row":
                report.rows += count
            else:
                report.dead_letters += count
        if len(set(got)) != len(got):
            return Verdict(False, "duplicate", "a message became two rows or dead letters")
        missing = len(set(expected) - set(got))
        if missing > answer["marks"] or set(got) - set(expected):
            return Verdict(False, "drop", f"{missing} messages are neither a row nor a dead letter nor a watermark")
        return Verdict(True)


_COUNTERS = {"crash": "crashes", "hang": "hangs", "drop": "silent_drops", "duplicate": "duplicates", "error": "errors"}


# -- what to feed it --------------------------------------------------------------------------------
def good_quote(i: int) -> bytes:
    ts = datetime(2025, 11, 28, 15, tzinfo=UTC) + timedelta(seconds=i)
    return orjson.dumps(
        {
            "schema": "quote.v1",
            "symbol": "AAPL",
            "quote_ts": ts.isoformat().replace("+00:00", "Z"),
            "fetched_at": (ts + timedelta(seconds=1)).isoformat().replace("+00:00", "Z"),
            "source": "synthetic",
            "price": 190.0 + i % 7,
            "change": 1.0,
            "change_pct": 0.5,
            "day_high": 199.0,
            "day_low": 180.0,
            "day_open": 189.0,
            "prev_close": 189.0,
        }
    )


# Inputs that broke something once, or are close to what did: always in the corpus.
SEEDS: list[bytes] = [
    b"null",
    b" null",
    b"\tnull\n",
    b"true",
    b"1",
    b"[]",
    b'"x"',
    b"",
    b" ",
    b"\n",
    b"\xef\xbb\xbf{}",
    b"\xef\xbb\xbfnull",
    b"\xff",
    b"{}",
    b"{} null",
    b"{}\nnull",
    b'{"a":1}{"b":2}',
    b'{"schema":null}',
    b'{"schema":"watermark.v1"}',
    b'{"schema":"watermark.v1","watermark_ts":"2025-11-28T21:00:00Z"}',
    b'{"schema":"quote.v1","quote_ts":"2025-11-28"}',
    b"{" * 5000 + b"}" * 5000,
    b'{"x":' + b"[" * 5000 + b"]" * 5000 + b"}",
]


def _json_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 2**63, -(2**63) - 1, 2**70, rng.randint(-(10**6), 10**6)])
    if kind == 3:
        return rng.choice([0.0, -0.0, 1e308, 5e-324, float("nan"), float("inf"), rng.uniform(-1e6, 1e6)])
    if kind == 4:
        return rng.choice(
            [
                "",
                "AAPL",
                "2025-11-28T15:00:00Z",
                "2025-11-28",
                "\u0000",
                "\ud800",
                "\udfff\ud800",
                "x" * rng.randrange(50),
            ]
        )
    if kind == 5:
        return "".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randrange(8)))
    if kind == 6:
        return [_json_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["schema", "symbol", "quote_ts", "fetched_at", "price", "day_low", "day_high", "watermark_ts", "x"]
    return {rng.choice(keys): _json_value(rng, depth + 1) for _ in range(rng.randrange(5))}


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        op = rng.randrange(5)
        if op == 0 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 1 and b:
            del b[rng.randrange(len(b)) :]
        elif op == 2:
            b[rng.randrange(len(b) + 1) : rng.randrange(len(b) + 1)] = rng.choice(SEEDS)[:64]
        elif op == 3:
            b.insert(rng.randrange(len(b) + 1), rng.choice(b' \t\r\n{}[]",:\x00\xff\xef'))
        else:
            b = bytearray(rng.choice(b" \t\n\r") * rng.randrange(3)) + b
    return bytes(b)


def random_inputs(rng: random.Random) -> Iterator[bytes]:
    """Arbitrary bytes, arbitrary JSON values, and good quotes mutated or with fields replaced."""
    i = 0
    while True:
        i += 1
        kind = rng.randrange(6)
        if kind == 0:
            yield rng.randbytes(rng.randrange(64))
        elif kind == 1:
            yield rng.choice(SEEDS)
        elif kind == 2:
            yield _dumps_lenient(rng, _json_value(rng))
        elif kind == 3:
            quote = orjson.loads(good_quote(i))
            quote[rng.choice(list(quote))] = _json_value(rng)
            yield _dumps_lenient(rng, quote)
        else:
            yield _mutate(rng, good_quote(i))


def _dumps_lenient(rng: random.Random, value: Any) -> bytes:
    """JSON as any producer might write it: big integers, NaN, lone surrogates (escaped or raw), raw non-ASCII."""
    return json.dumps(value, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")


def fuzz_batches(values: Sequence[bytes], rng: random.Random, mix: int = 7) -> Iterator[Batch]:
    """Each value alone, then among good quotes at a rotating position (first, middle, last of a batch)."""
    for v in values:
        yield [(v, b"AAPL")]
    for start in range(0, len(values), mix):
        chunk = list(values[start : start + mix])
        batch: Batch = [(good_quote(start + j), b"AAPL") for j in range(2 * mix)]
        for j, v in enumerate(chunk):
            at = (start + j * rng.randrange(1, 5)) % (len(batch) + 1)
            batch.insert(at, (v, b"AAPL" if rng.random() < 0.9 else None))
        yield batch


def run_fuzz(inputs: int, seed: int = 20261128, timeout_s: float = 60.0) -> FuzzReport:
    """Feed `inputs` generated values through the consumer's batch path; the report counts what went wrong."""
    rng = random.Random(seed)  # noqa: S311 - reproducible inputs, not security
    report = FuzzReport()
    started = time.perf_counter()
    gen = random_inputs(rng)
    with FuzzHarness(timeout_s) as harness:
        chunk = 2000
        while report.inputs < inputs:
            values = [next(gen) for _ in range(min(chunk, inputs - report.inputs))]
            for batch in fuzz_batches(values, rng):
                harness.run(batch, report)
            report.inputs += len(values)
    report.seconds = round(time.perf_counter() - started, 1)
    return report


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(json.dumps(run_fuzz(int(sys.argv[1]) if len(sys.argv) > 1 else 1000).__dict__, indent=2, default=str))
    os._exit(0)
