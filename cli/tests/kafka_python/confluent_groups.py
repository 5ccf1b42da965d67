"""Drives confluent-kafka consumer groups (librdkafka's classic, eager protocol, as Python
applications use it) against ringbus's Kafka listener; run by cli/tests/kafka_groups.rs, which
starts the broker, and for `resume` kills and restarts it between the two phases.

Usage: confluent_groups.py BOOTSTRAP groups
    Three members of one group over 6 partitions, each polled in its own thread, join one after
    another while an idempotent producer keeps producing, so that the group rebalances while it
    consumes. Then every record was consumed at least once, each partition is owned by exactly
    one member, the commits cover every record; the three members close, three new ones join,
    M more records are produced and the new group gets exactly those M.
Usage: confluent_groups.py BOOTSTRAP resume
    An idempotent producer stores records over 3 partitions, a member consumes a different
    share of each partition, stores and commits exactly those (synchronously) and closes; then
    the script prints `committed {"P": OFFSET, ...}` and waits for a line on stdin (the Rust
    side kills the broker with SIGKILL and restarts it on the same data dir and port). Then the
    same producer stores more records, a new member of the group starts exactly at the
    committed offsets and reads every later record once, and every acknowledged record is in
    the log, at the offset its acknowledgement gave.

Exits non-zero with the failed check on stderr; prints what it saw on stderr as it goes.
"""

import json
import sys
import threading
import time

from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP, MODE = sys.argv[1], sys.argv[2]
# How long any one wait may take before the check fails.
DEADLINE_S = 60
# Small session and heartbeat settings, so that rebalances take about a second; the broker
# accepts session timeouts from 1 s. max.poll.interval.ms is also librdkafka's rebalance
# timeout: how long the coordinator waits for a member to rejoin.
GROUP_SETTINGS = {
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
    "max.poll.interval.ms": 15000,
    "reconnect.backoff.max.ms": 500,
}


def check(condition, what):
    if not condition:
        print(f"check failed: {what}", file=sys.stderr)
        sys.exit(1)


def say(what):
    print(what, file=sys.stderr, flush=True)


def wait_until(condition, what):
    """Waits for `condition()` (threads and librdkafka change what it reads), or fails."""
    deadline = time.time() + DEADLINE_S
    while not condition():
        check(time.time() < deadline, f"in {DEADLINE_S} s: {what}")
        time.sleep(0.05)


def create_topic(name, partitions):
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for topic, future in admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1)]
    ).items():
        check(future.result(timeout=DEADLINE_S) is None, f"{topic} created")


class Deliveries:
    """An idempotent producer's acknowledged records: (partition, offset) -> value."""

    def __init__(self, topic):
        self.topic = topic
        self.producer = Producer(
            {
                "bootstrap.servers": BOOTSTRAP,
                "enable.idempotence": True,
                "linger.ms": 5,
                "reconnect.backoff.max.ms": 500,
            }
        )
        self.acknowledged = {}
        self.failures = []
        self.next_index = 0

    def _delivered(self, error, message):
        if error is not None:
            self.failures.append(error)
            return
        where = (message.partition(), message.offset())
        if where in self.acknowledged:
            # Called on the thread that polls the producer: reported by `flush`'s checks.
            self.failures.append(f"{where} acknowledged twice")
        self.acknowledged[where] = message.value().decode()

    def produce(self, count):
        for _ in range(count):
            i = self.next_index
            self.next_index += 1
            self.producer.produce(
                self.topic,
                key=f"key-{i}".encode(),
                value=f"value-{i}".encode(),
                on_delivery=self._delivered,
            )
        self.producer.poll(0)

    def flush(self):
        check(self.producer.flush(DEADLINE_S) == 0, "every record delivered in time")
        check(not self.failures, f"no delivery failed: {self.failures[:3]}")
        check(
            len(self.acknowledged) == self.next_index,
            f"{self.next_index} acknowledged, got {len(self.acknowledged)}",
        )

    def log_end(self, partitions):
        """Per partition, the offset after the last acknowledged record (0 if none)."""
        ends = [0] * partitions
        for partition, offset in self.acknowledged:
            ends[partition] = max(ends[partition], offset + 1)
        return ends


# --- groups ---------------------------------------------------------------------------------

GROUPS_TOPIC = "groups"
GROUPS_PARTITIONS = 6
GROUP = "confluent-group"
# Records produced per round while the members join.
ROUND_RECORDS = 30
# Records produced once the restarted group is stable.
MORE_RECORDS = 300


class Member(threading.Thread):
    """One group member polled in its own thread. Its rebalance callbacks record every
    assignment, and on revocation it commits what it consumed, synchronously, as eager-protocol
    applications do. It polls until `stop`, then commits synchronously and waits for `close`."""

    def __init__(self, name):
        super().__init__(name=name, daemon=True)
        self.lock = threading.Lock()
        self.owned = set()
        # The partition count of every assignment, in order.
        self.assignments = []
        # (partition, offset, value) of every record polled, in order.
        self.records = []
        # Records polled since the latest assignment.
        self.records_since_assignment = 0
        self.commit_errors = []
        self.stop = threading.Event()
        self.committed = threading.Event()
        self.close = threading.Event()
        self.closed = threading.Event()
        self.failure = None
        self.consumer = None

    def _commit(self, consumer, when):
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as error:
            # Nothing polled since the assignment: nothing to commit.
            if error.args[0].code() != KafkaError._NO_OFFSET:
                self.commit_errors.append(f"{when}: {error}")

    def _on_assign(self, consumer, partitions):
        with self.lock:
            self.owned = {tp.partition for tp in partitions}
            self.assignments.append(len(partitions))
            self.records_since_assignment = 0

    def _on_revoke(self, consumer, partitions):
        self._commit(consumer, "on revoke")
        with self.lock:
            self.owned = set()

    def run(self):
        try:
            self.consumer = Consumer(
                {"bootstrap.servers": BOOTSTRAP, "group.id": GROUP, "client.id": self.name}
                | GROUP_SETTINGS
            )
            self.consumer.subscribe(
                [GROUPS_TOPIC], on_assign=self._on_assign, on_revoke=self._on_revoke
            )
            # Within one assignment a partition's offsets follow each other with no gap.
            last = {}
            while not self.stop.is_set():
                message = self.consumer.poll(0.1)
                if message is None:
                    continue
                if message.error() is not None:
                    raise RuntimeError(f"consume error: {message.error()}")
                partition, offset = message.partition(), message.offset()
                with self.lock:
                    if self.records_since_assignment == 0:
                        last = {}
                    previous = last.get(partition)
                    if previous is not None and offset != previous + 1:
                        raise RuntimeError(
                            f"partition {partition}: offset {offset} after {previous}"
                        )
                    last[partition] = offset
                    self.records.append((partition, offset, message.value().decode()))
                    self.records_since_assignment += 1
            self._commit(self.consumer, "at the end")
            self.committed.set()
            self.close.wait()
            self.consumer.close()
        except Exception as error:  # reported by the main thread's checks
            self.failure = repr(error)
            self.committed.set()
        finally:
            self.closed.set()

    def snapshot(self):
        with self.lock:
            return (
                set(self.owned),
                list(self.assignments),
                len(self.records),
                self.records_since_assignment,
            )


def start_members(names, wait_for):
    """Starts members one after another; before each next one, `wait_for(started)` must hold."""
    members = []
    for name in names:
        if members:
            wait_until(lambda: wait_for(members), f"{name} may join: {report(members)}")
        member = Member(name)
        member.start()
        members.append(member)
    return members


def report(members):
    return {member.name: member.snapshot() for member in members}


def check_healthy(members):
    for member in members:
        check(member.failure is None, f"{member.name}: {member.failure}")
        check(not member.commit_errors, f"{member.name}: {member.commit_errors}")


def stable(members, partitions):
    """Each member owns an equal share, and together they own every partition once."""
    snapshots = [member.snapshot() for member in members]
    owned = [snapshot[0] for snapshot in snapshots]
    share = partitions // len(members)
    return all(len(o) == share for o in owned) and set().union(*owned) == set(
        range(partitions)
    )


def stop_members(members):
    for member in members:
        member.stop.set()
    for member in members:
        check(member.committed.wait(DEADLINE_S), f"{member.name} committed in time")
    check_healthy(members)


def close_members(members):
    for member in members:
        member.close.set()
    for member in members:
        check(member.closed.wait(DEADLINE_S), f"{member.name} closed in time")
    check_healthy(members)


def groups():
    create_topic(GROUPS_TOPIC, GROUPS_PARTITIONS)
    deliveries = Deliveries(GROUPS_TOPIC)

    # Each member joins once the one before has consumed while owning its share; the producer
    # keeps producing meanwhile, so every rebalance happens while the group consumes.
    names = ["member-1", "member-2", "member-3"]
    producing = threading.Event()
    producing.set()

    def produce_while_joining():
        while producing.is_set():
            deliveries.produce(ROUND_RECORDS)
            time.sleep(0.02)

    producer = threading.Thread(target=produce_while_joining, daemon=True)
    producer.start()

    def consumed_in_share(started):
        _, assignments, _, since = started[-1].snapshot()
        return assignments and since > 0

    members = start_members(names, consumed_in_share)
    # Produce on until every member has consumed in the final, three-way assignment.
    wait_until(
        lambda: stable(members, GROUPS_PARTITIONS)
        and all(member.snapshot()[3] > 0 for member in members),
        f"three members own two partitions each and consume: {report(members)}",
    )
    producing.clear()
    producer.join()
    deliveries.flush()
    check_healthy(members)
    produced = deliveries.acknowledged
    say(f"groups: {len(produced)} records produced while members joined")

    # Everything acknowledged is consumed (at least once: a revoked partition's next owner may
    # read again what its previous one read after its last commit).
    def everything_seen():
        seen = set()
        for member in members:
            with member.lock:
                seen.update((p, o) for p, o, _ in member.records)
        return seen.issuperset(produced)

    wait_until(everything_seen, f"every record consumed: {report(members)}")
    stop_members(members)
    seen = {}
    for member in members:
        for partition, offset, value in member.records:
            seen.setdefault((partition, offset), []).append(value)
    check(set(seen) == set(produced), "nothing consumed that was not produced")
    for where, values in seen.items():
        check(all(v == produced[where] for v in values), f"{where}: {values}")
    again = sum(len(values) - 1 for values in seen.values())
    say(f"groups: every record consumed, {again} of them again after a rebalance")

    # Each partition owned by exactly one member at the end, two each.
    owned = [member.snapshot()[0] for member in members]
    check(
        sorted(p for o in owned for p in o) == list(range(GROUPS_PARTITIONS)),
        f"each partition owned once: {owned}",
    )
    check(all(len(o) == 2 for o in owned), f"two partitions each: {owned}")
    # The coordinator's view agrees: one generation, each member owning what it was told.
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    described = admin.describe_consumer_groups([GROUP])[GROUP].result(timeout=DEADLINE_S)
    check(described.state == ConsumerGroupState.STABLE, f"stable: {described.state}")
    shares = {
        m.client_id: sorted(tp.partition for tp in m.assignment.topic_partitions)
        for m in described.members
    }
    told = {member.name: sorted(o) for member, o in zip(members, owned)}
    check(shares == told, f"the coordinator's shares {shares}, the members' {told}")
    # Real rebalances: the first member owned all six, then three, then two; the second
    # three, then two; the third two.
    assignments = [member.snapshot()[1] for member in members]
    check(
        assignments == [[6, 3, 2], [3, 2], [2]],
        f"the group rebalanced as each member joined: {assignments}",
    )

    # The commits cover every record.
    log_end = deliveries.log_end(GROUPS_PARTITIONS)
    committed = members[0].consumer.committed(
        [TopicPartition(GROUPS_TOPIC, p) for p in range(GROUPS_PARTITIONS)],
        timeout=DEADLINE_S,
    )
    check(
        [tp.offset for tp in committed] == log_end,
        f"committed {[tp.offset for tp in committed]}, log end {log_end}",
    )
    close_members(members)
    say(f"groups: committed {log_end}; the three members closed")

    # The whole group restarts: three new members join one after another; once the group is
    # stable, M more records come, and the group gets exactly those.
    restarted = start_members(
        ["member-4", "member-5", "member-6"],
        lambda started: stable(started, GROUPS_PARTITIONS),
    )
    wait_until(
        lambda: stable(restarted, GROUPS_PARTITIONS),
        f"the restarted group is stable: {report(restarted)}",
    )
    check_healthy(restarted)
    before = dict(deliveries.acknowledged)
    deliveries.produce(MORE_RECORDS)
    deliveries.flush()
    new = {w: v for w, v in deliveries.acknowledged.items() if w not in before}
    check(len(new) == MORE_RECORDS, f"{MORE_RECORDS} new acknowledged, got {len(new)}")

    def polled():
        total = []
        for member in restarted:
            with member.lock:
                total.extend(member.records)
        return total

    wait_until(
        lambda: len(polled()) >= MORE_RECORDS, f"the new records consumed: {report(restarted)}"
    )
    stop_members(restarted)
    records = polled()
    check(
        len(records) == MORE_RECORDS,
        f"exactly {MORE_RECORDS} records after the restart, got {len(records)}",
    )
    check(
        {(p, o): v for p, o, v in records} == new,
        "the restarted group got exactly the new records: "
        f"{sorted(set((p, o) for p, o, _ in records) ^ set(new))[:10]}",
    )
    assignments = [member.snapshot()[1] for member in restarted]
    check(
        assignments == [[6, 3, 2], [3, 2], [2]],
        f"no rebalance after the group was stable: {assignments}",
    )
    close_members(restarted)
    say(f"groups: the restarted group got exactly the {MORE_RECORDS} new records")


# --- resume ---------------------------------------------------------------------------------

RESUME_TOPIC = "resume"
RESUME_PARTITIONS = 3
RESUME_GROUP = "confluent-resume"
BEFORE_CRASH = 1500
AFTER_CRASH = 600


def resume():
    create_topic(RESUME_TOPIC, RESUME_PARTITIONS)
    deliveries = Deliveries(RESUME_TOPIC)
    deliveries.produce(BEFORE_CRASH)
    deliveries.flush()
    log_end = deliveries.log_end(RESUME_PARTITIONS)
    check(all(end >= 4 for end in log_end), f"records in every partition: {log_end}")
    # A different share of each partition is processed: a quarter, a half, three quarters.
    shares = [end * (p + 1) // 4 for p, end in enumerate(log_end)]

    # The member stores the offsets of what it processed (not what it merely polled), then
    # commits them synchronously.
    settings = {"bootstrap.servers": BOOTSTRAP, "group.id": RESUME_GROUP} | GROUP_SETTINGS
    member = Consumer(settings | {"enable.auto.offset.store": False})
    member.subscribe([RESUME_TOPIC])
    processed = [0] * RESUME_PARTITIONS
    deadline = time.time() + DEADLINE_S
    while processed != shares:
        check(time.time() < deadline, f"processed {processed} of {shares} in time")
        message = member.poll(0.1)
        if message is None:
            continue
        check(message.error() is None, f"no consume error: {message.error()}")
        partition, offset = message.partition(), message.offset()
        if offset < shares[partition]:
            check(offset == processed[partition], f"{partition}: {offset} in order")
            member.store_offsets(message)
            processed[partition] += 1
    answered = member.commit(asynchronous=False)
    check(all(tp.error is None for tp in answered), f"the commit succeeded: {answered}")
    committed = member.committed(
        [TopicPartition(RESUME_TOPIC, p) for p in range(RESUME_PARTITIONS)],
        timeout=DEADLINE_S,
    )
    check(
        [tp.offset for tp in committed] == shares,
        f"committed {[tp.offset for tp in committed]}, processed {shares}",
    )
    member.close()
    say(f"resume: committed {shares} of {log_end}")
    print(f"committed {json.dumps(shares)}", flush=True)

    # The broker is killed and restarted here.
    line = sys.stdin.readline()
    check(line == "restarted\n", f"the broker restarted: {line!r}")

    # The same producer goes on after reconnecting; nothing it had acknowledged is lost.
    deliveries.produce(AFTER_CRASH)
    deliveries.flush()
    log_end = deliveries.log_end(RESUME_PARTITIONS)
    check(
        len(deliveries.acknowledged) == BEFORE_CRASH + AFTER_CRASH,
        f"{BEFORE_CRASH + AFTER_CRASH} acknowledged",
    )

    # A new member resumes exactly at the committed offsets and reads every later record once.
    member = Consumer(settings)
    committed = member.committed(
        [TopicPartition(RESUME_TOPIC, p) for p in range(RESUME_PARTITIONS)],
        timeout=DEADLINE_S,
    )
    check(
        [tp.offset for tp in committed] == shares,
        f"after the restart committed {[tp.offset for tp in committed]}, was {shares}",
    )
    member.subscribe([RESUME_TOPIC])
    expected = {
        (p, o): v for (p, o), v in deliveries.acknowledged.items() if o >= shares[p]
    }
    read = {}
    following = list(shares)
    deadline = time.time() + DEADLINE_S
    while len(read) < len(expected):
        check(time.time() < deadline, f"read {len(read)} of {len(expected)} in time")
        message = member.poll(0.1)
        if message is None:
            continue
        check(message.error() is None, f"no consume error: {message.error()}")
        partition, offset = message.partition(), message.offset()
        check(
            offset == following[partition],
            f"partition {partition}: offset {offset}, expected {following[partition]}",
        )
        following[partition] += 1
        read[(partition, offset)] = message.value().decode()
    check(read == expected, "the new member read every record after the commits")
    check(following == log_end, f"read up to {following}, log end {log_end}")
    low_high = [
        member.get_watermark_offsets(TopicPartition(RESUME_TOPIC, p), timeout=DEADLINE_S)
        for p in range(RESUME_PARTITIONS)
    ]
    check(
        low_high == [(0, end) for end in log_end],
        f"watermarks {low_high}, acknowledged up to {log_end}",
    )
    member.close()

    # Every acknowledged record, from before the crash and after, is where its
    # acknowledgement said, once.
    reader = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "confluent-resume-audit"})
    reader.assign([TopicPartition(RESUME_TOPIC, p, 0) for p in range(RESUME_PARTITIONS)])
    stored = {}
    deadline = time.time() + DEADLINE_S
    while len(stored) < len(deliveries.acknowledged):
        check(time.time() < deadline, f"audited {len(stored)} in time")
        message = reader.poll(0.1)
        if message is None:
            continue
        check(message.error() is None, f"no consume error: {message.error()}")
        where = (message.partition(), message.offset())
        check(where not in stored, f"{where} read twice")
        stored[where] = message.value().decode()
    reader.close()
    check(stored == deliveries.acknowledged, "every acknowledged record stored as acknowledged")
    say(f"resume: resumed at {shares}, read {len(read)} records up to {log_end}")


{"groups": groups, "resume": resume}[MODE]()
