"""`stockpipe consumer`: Kafka -> lake, exactly once.

Protocol (see DESIGN.md): file boundaries come from the log (PartitionFiles); an object is written
atomically under a name derived from its offsets; offsets are committed only after the object is
durable; on assignment each partition resumes after the newest object the lake holds for it (the
lake is the source of truth), or after the committed offset when that is further (rejected and
control records past the last file). A message that fails its contract goes to the dead-letter
topic with the reason, its bytes and its topic/partition/offset, and never blocks its partition.

Crash loops: no input is known to crash the checker (see validation.py), but if one ever did, the
same message would kill every incarnation. The state that survives a crash is the committed
offset's metadata, a marker {"n": crashes in a row, "probe": offsets being checked}: written on
assignment (the same offset committed again) and with every commit; a clean exit or hand-over
clears it. A partition that finds a marker was being worked on when its last owner died: its next
`max_records_per_file + (checker_threads + 2) * batch_size` offsets (everything the dead one could
have held uncommitted) are checked in chunks of 64, each under a marker naming it (a synchronous
commit of the same offset), and a chunk named by a crash is checked one message at a time. Once
the crashes outnumber `crash_loop_restarts` and the marker names a single message, that message
goes to the dead-letter topic as `crashed_consumer` without being parsed again.

Zombies: a consumer paused past its session timeout (SIGSTOP, a long GC, a frozen VM) may wake with
a batch whose partition has moved on. Every object is written with `Lake.write_new` (first write of
a name wins; a retry of identical bytes is a no-op) after checking that the lake does not already
hold the partition past the object's first offset. A refused write is fenced: the batch is given up,
its offsets are not committed, and a synchronous commit asks the group whether the partition is
still ours: if not (a zombie), it is forgotten; if so (the other writer was a zombie that got ahead
of us), it re-reads from the lake's resume point.

Modules, by responsibility: `settings` (settings and metrics), `markers` (the crash-loop marker
protocol), `fence` (the zombie fence), `deadletters` (dead letters and their rate alert), `batches`
(column-wise batch preparation and routing), `offsets` (offset bookkeeping and rebalance callbacks),
`core` (the state they share, lake retries and incidents) and `loop` (`LakeConsumer`, composing them).
"""

from stockpipe.stream.consumer.loop import LakeConsumer, run_consumer
from stockpipe.stream.consumer.settings import ConsumerSettings

__all__ = ["ConsumerSettings", "LakeConsumer", "run_consumer"]
