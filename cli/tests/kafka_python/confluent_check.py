"""Drives confluent-kafka (librdkafka, as Python applications use it) against ringbus's Kafka
listener; run by cli/tests/kafka_python.rs, which starts the broker and checks the output.

Usage: confluent_check.py BOOTSTRAP NATIVE_TOPIC NATIVE_COUNT
Exits non-zero with the failed check on stderr. On success prints the NATIVE_TOPIC records it
consumed as KEY:VALUE lines (the Rust side compares them with what `ringbus produce` wrote).
"""

import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP, NATIVE_TOPIC, NATIVE_COUNT = sys.argv[1], sys.argv[2], int(sys.argv[3])
TOPIC = "python"
PARTITIONS = 6
COUNT = 3000
DEADLINE_S = 60


def check(condition, what):
    if not condition:
        print(f"check failed: {what}", file=sys.stderr)
        sys.exit(1)


def produce(producer, first, count):
    failures = []
    for i in range(first, first + count):
        producer.produce(
            TOPIC,
            key=f"key-{i}".encode(),
            value=f"value-{i}".encode(),
            on_delivery=lambda error, _: error and failures.append(error),
        )
    check(producer.flush(DEADLINE_S) == 0, "every record delivered in time")
    check(not failures, f"no delivery failed: {failures[:3]}")


def consume(consumer, count):
    """Polls until `count` records arrived (or the deadline passed); returns their values."""
    values = []
    deadline = time.time() + DEADLINE_S
    while len(values) < count and time.time() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        check(message.error() is None, f"no consume error: {message.error()}")
        values.append(message.value().decode())
    return values


admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
for topic, future in admin.create_topics(
    [NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)]
).items():
    check(future.result(timeout=DEADLINE_S) is None, f"{topic} created")

# An idempotent producer (InitProducerId, sequenced batches), keyed records over 6 partitions.
producer = Producer(
    {"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True, "linger.ms": 5}
)
produce(producer, 0, COUNT)

# A group member: subscribe, consume everything, commit synchronously, leave.
group = {
    "bootstrap.servers": BOOTSTRAP,
    "group.id": "python-readers",
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
}
consumer = Consumer(group)
consumer.subscribe([TOPIC])
values = consume(consumer, COUNT)
check(len(values) == COUNT, f"{COUNT} consumed, got {len(values)}")
check(len(set(values)) == COUNT, "no record twice")
consumer.commit(asynchronous=False)
committed = consumer.committed(
    [TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=DEADLINE_S
)
check(sum(tp.offset for tp in committed) == COUNT, f"commits add up: {committed}")
consumer.close()

# The next member of the group resumes after the commits: only the new records.
produce(producer, COUNT, 100)
consumer = Consumer(group)
consumer.subscribe([TOPIC])
values = consume(consumer, 100)
check(
    sorted(values) == sorted(f"value-{i}" for i in range(COUNT, COUNT + 100)),
    f"only the 100 new records after the commits, got {len(values)}",
)
consumer.close()

# ListOffsets: watermarks and a lookup by timestamp.
reader = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "python-offsets"})
low, high = reader.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=DEADLINE_S)
check(low == 0 and high > 0, f"watermarks of partition 0: {low}, {high}")
found = reader.offsets_for_times([TopicPartition(TOPIC, 0, 0)], timeout=DEADLINE_S)
check(found[0].offset == 0, f"the first record at or after time 0: {found}")
reader.close()

# The group is listed by ListGroups.
groups = admin.list_consumer_groups().result(timeout=DEADLINE_S).valid
check(
    "python-readers" in [g.group_id for g in groups], f"the group is listed: {groups}"
)

# Compressed batches are stored and served as they came: an idempotent producer per codec
# (sequences and epochs live in the batch header, so producer state checks them as for
# uncompressed batches), and a consumer decompresses every record back. Snappy is tried too:
# librdkafka's wheels build it in, and were it missing the producer would fail to start.
CODEC_COUNT = 2000
for codec in ("lz4", "zstd", "gzip", "snappy"):
    topic = f"python-{codec}"
    for name, future in admin.create_topics(
        [NewTopic(topic, num_partitions=2, replication_factor=1)]
    ).items():
        check(future.result(timeout=DEADLINE_S) is None, f"{name} created")
    compressed = Producer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "enable.idempotence": True,
            "compression.type": codec,
            "linger.ms": 20,
        }
    )
    failures = []
    for i in range(CODEC_COUNT):
        # Repetitive values, so that every codec really shrinks the batch.
        compressed.produce(
            topic,
            key=f"key-{i}".encode(),
            value=(f"{codec}-value-{i}-" * 8).encode(),
            on_delivery=lambda error, _: error and failures.append(error),
        )
    check(compressed.flush(DEADLINE_S) == 0, f"{codec}: every record delivered in time")
    check(not failures, f"{codec}: no delivery failed: {failures[:3]}")
    reader = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"python-{codec}"})
    reader.assign([TopicPartition(topic, p, 0) for p in range(2)])
    seen = {}
    deadline = time.time() + DEADLINE_S
    while len(seen) < CODEC_COUNT and time.time() < deadline:
        message = reader.poll(0.5)
        if message is None:
            continue
        check(message.error() is None, f"{codec}: no consume error: {message.error()}")
        where = (message.partition(), message.offset())
        check(where not in seen, f"{codec}: {where} read twice")
        seen[where] = (message.key(), message.value())
    reader.close()
    check(len(seen) == CODEC_COUNT, f"{codec}: {CODEC_COUNT} read, got {len(seen)}")
    expected = sorted(
        (f"key-{i}".encode(), (f"{codec}-value-{i}-" * 8).encode())
        for i in range(CODEC_COUNT)
    )
    check(sorted(seen.values()) == expected, f"{codec}: every record back intact")
    # Offsets are contiguous from 0 in each partition: baseOffset was assigned per batch.
    for p in range(2):
        offsets = sorted(o for (q, o) in seen if q == p)
        check(offsets == list(range(len(offsets))), f"{codec}: partition {p} offsets")
    print(f"{codec}: {CODEC_COUNT} records", file=sys.stderr)

# What `ringbus produce` wrote over the ringbus wire, read back over Kafka's.
native = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "python-native"})
native.assign([TopicPartition(NATIVE_TOPIC, 0, 0)])
records = []
deadline = time.time() + DEADLINE_S
while len(records) < NATIVE_COUNT and time.time() < deadline:
    message = native.poll(0.5)
    if message is None:
        continue
    check(message.error() is None, f"no consume error: {message.error()}")
    records.append(message.key() + b":" + message.value())
native.close()
check(len(records) == NATIVE_COUNT, f"{NATIVE_COUNT} native records, got {len(records)}")
sys.stdout.buffer.write(b"".join(record + b"\n" for record in records))
