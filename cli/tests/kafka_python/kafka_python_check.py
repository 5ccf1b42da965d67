"""Drives kafka-python (the pure-Python client, as Python applications use it) against ringbus's
Kafka listener; run by cli/tests/kafka_python_client.rs, which starts the broker and checks the
output.

Usage: kafka_python_check.py BOOTSTRAP NATIVE_TOPIC NATIVE_COUNT
Exits non-zero with the failed check on stderr. On success prints the NATIVE_TOPIC records it
consumed as KEY:VALUE lines (the Rust side compares them with what `ringbus produce` wrote).
"""

import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

BOOTSTRAP, NATIVE_TOPIC, NATIVE_COUNT = sys.argv[1], sys.argv[2], int(sys.argv[3])
TOPIC = "kafka-python"
PARTITIONS = 4
COUNT = 2000
MORE = 100
TIMES_TOPIC = "kafka-python-times"
TIMES_COUNT = 40
# Explicit CreateTime timestamps, 10 ms apart from a fixed base: the lookups are exact.
TIMES_BASE_MS = 1_600_000_000_000
TIMES_STEP_MS = 10
DEADLINE_S = 60


def check(condition, what):
    if not condition:
        print(f"check failed: {what}", file=sys.stderr)
        sys.exit(1)


def key(i):
    return f"key-{i}".encode()


def value(i):
    # Repetitive, with bytes outside ASCII, so gzip really shrinks the batch and the round
    # trip is byte for byte.
    return (f"value-{i}-\u00fc\u2713-" * 6).encode() + bytes([0, 255, i % 256])


def produce(producer, first, count, topic=TOPIC, timestamp_ms=None):
    """Sends records first..first+count; every future must succeed. Returns where each went:
    {i: (partition, offset)}."""
    futures = {
        i: producer.send(
            topic,
            key=key(i),
            value=value(i),
            timestamp_ms=None if timestamp_ms is None else timestamp_ms(i),
        )
        for i in range(first, first + count)
    }
    producer.flush(timeout=DEADLINE_S)
    placed = {}
    for i, future in futures.items():
        check(future.is_done, f"record {i} delivered in time")
        check(future.succeeded(), f"record {i} delivered: {future.exception}")
        metadata = future.get()
        check(metadata.topic == topic, f"record {i} went to {metadata.topic}")
        placed[i] = (metadata.partition, metadata.offset)
    return placed


def consume(consumer, count):
    """Polls until `count` records arrived (or the deadline passed); returns them in order."""
    records = []
    deadline = time.time() + DEADLINE_S
    while len(records) < count and time.time() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    return records


def check_exactly(records, expected, what):
    """`records` are exactly the records `expected` ({i: (partition, offset)}) names, each
    once, keys and values byte for byte."""
    seen = {}
    for record in records:
        where = (record.partition, record.offset)
        check(where not in seen, f"{what}: {where} read twice")
        seen[where] = (record.key, record.value)
    want = {where: (key(i), value(i)) for i, where in expected.items()}
    check(
        seen.keys() == want.keys(),
        f"{what}: read {len(seen)} records, expected {len(want)}; "
        f"missing {sorted(want.keys() - seen.keys())[:5]}, "
        f"extra {sorted(seen.keys() - want.keys())[:5]}",
    )
    for where, record in want.items():
        check(seen[where] == record, f"{what}: {where} read back intact: {seen[where]}")


# The admin client creates the topics (CreateTopics through the controller it found by
# Metadata); every topic's error code is 0.
admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=DEADLINE_S * 1000)
response = admin.create_topics(
    [
        NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1),
        NewTopic(TIMES_TOPIC, num_partitions=1, replication_factor=1),
    ],
    timeout_ms=DEADLINE_S * 1000,
)
check(
    sorted((name, code) for name, code, *_ in response.topic_errors)
    == [(TOPIC, 0), (TIMES_TOPIC, 0)],
    f"both topics created: {response}",
)
admin.close()

# A gzip producer waiting for every replica: keyed records over the partitions. The offsets it
# was told are contiguous from 0 in each partition, and every partition got records.
producer = KafkaProducer(
    bootstrap_servers=BOOTSTRAP, compression_type="gzip", acks="all", linger_ms=5
)
check(
    producer.partitions_for(TOPIC) == set(range(PARTITIONS)),
    f"{PARTITIONS} partitions: {producer.partitions_for(TOPIC)}",
)
placed = produce(producer, 0, COUNT)
for p in range(PARTITIONS):
    offsets = sorted(o for (q, o) in placed.values() if q == p)
    check(offsets, f"partition {p} got records")
    check(offsets == list(range(len(offsets))), f"partition {p} offsets are 0..{len(offsets)}")

# A group member: subscribe, read every record once, commit synchronously, leave. The commits
# are each partition's end.
group = dict(
    bootstrap_servers=BOOTSTRAP,
    group_id="kafka-python-readers",
    auto_offset_reset="earliest",
    enable_auto_commit=False,
)
partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
consumer = KafkaConsumer(**group)
consumer.subscribe([TOPIC])
records = consume(consumer, COUNT)
check_exactly(records, placed, "the group's first member")
consumer.commit()
ends = consumer.end_offsets(partitions)
committed = {tp: consumer.committed(tp) for tp in partitions}
check(committed == ends, f"the commits are the ends: {committed} != {ends}")
check(sum(ends.values()) == COUNT, f"the ends add up to {COUNT}: {ends}")
consumer.close()

# The next member of the group resumes after the commits: exactly the new records.
more = produce(producer, COUNT, MORE)
consumer = KafkaConsumer(**group)
consumer.subscribe([TOPIC])
records = consume(consumer, MORE)
check_exactly(records, more, "the group's next member")
ends = consumer.end_offsets(partitions)
positions = {tp: consumer.position(tp) for tp in partitions}
check(positions == ends, f"nothing left to read: positions {positions}, ends {ends}")
consumer.commit()
consumer.close()
placed.update(more)

# Seek into the middle of a partition (inside a gzip batch: the client drops the records
# before the offset): the first record read is the one at that offset, then the rest in order.
partition = max(range(PARTITIONS), key=lambda p: ends[TopicPartition(TOPIC, p)])
tp = TopicPartition(TOPIC, partition)
offset = ends[tp] // 2 + 1
at = {o: i for i, (q, o) in placed.items() if q == partition}
reader = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
reader.assign([tp])
reader.seek(tp, offset)
records = consume(reader, ends[tp] - offset)
check(
    [r.offset for r in records] == list(range(offset, ends[tp])),
    f"after seek({offset}) offsets {offset}..{ends[tp]}: {[r.offset for r in records][:5]}",
)
check(
    all((r.key, r.value) == (key(at[r.offset]), value(at[r.offset])) for r in records),
    f"after seek({offset}) every record intact",
)

producer.close()

# ListOffsets by timestamp: records with explicit timestamps 10 ms apart, batched several to a
# batch (linger). The lookup names the first record at or after the time (inside a batch too),
# with its timestamp, and seeking there reads that record. Uncompressed: the broker does not
# decompress, so inside a compressed batch it can only answer the batch's first record.
stamp = lambda i: TIMES_BASE_MS + TIMES_STEP_MS * i  # noqa: E731
plain = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=50)
timed = produce(plain, 0, TIMES_COUNT, topic=TIMES_TOPIC, timestamp_ms=stamp)
check(
    sorted(timed.values()) == [(0, o) for o in range(TIMES_COUNT)],
    f"{TIMES_TOPIC} offsets: {sorted(timed.values())[:5]}",
)
plain.close()
times = TopicPartition(TIMES_TOPIC, 0)
lookups = {
    0: 0,  # before every record: the first
    stamp(0): 0,
    stamp(7): 7,  # exactly a record's time
    stamp(7) + 1: 8,  # between two records: the later one
    stamp(TIMES_COUNT // 2) - 1: TIMES_COUNT // 2,
    stamp(TIMES_COUNT - 1): TIMES_COUNT - 1,
}
for ts, want in lookups.items():
    found = reader.offsets_for_times({times: ts})[times]
    check(
        found is not None and (found.offset, found.timestamp) == (want, stamp(want)),
        f"offsets_for_times({ts}): want offset {want} at {stamp(want)}, got {found}",
    )
found = reader.offsets_for_times({times: stamp(TIMES_COUNT)})[times]
check(found is None, f"offsets_for_times after the last record: none, got {found}")
want = 13
found = reader.offsets_for_times({times: stamp(want) - 3})[times]
reader.assign([times])
reader.seek(times, found.offset)
records = consume(reader, 1)
check(records, "a record after seeking to the time")
first = records[0]
check(
    (first.offset, first.timestamp, first.key, first.value)
    == (want, stamp(want), key(want), value(want)),
    f"seeking to the time reads record {want}: {first}",
)
reader.close()

# What `ringbus produce` wrote over the ringbus wire, read back over Kafka's.
native = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
native_tp = TopicPartition(NATIVE_TOPIC, 0)
native.assign([native_tp])
native.seek_to_beginning(native_tp)
records = consume(native, NATIVE_COUNT)
native.close()
check(len(records) == NATIVE_COUNT, f"{NATIVE_COUNT} native records, got {len(records)}")
check(
    [r.offset for r in records] == list(range(NATIVE_COUNT)),
    f"native offsets 0..{NATIVE_COUNT}",
)
sys.stdout.buffer.write(b"".join(r.key + b":" + r.value + b"\n" for r in records))
