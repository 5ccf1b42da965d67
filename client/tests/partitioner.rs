//! Goal: a producer record goes to the partition the rule says: explicit, else Kafka's murmur2
//! of the key (bit-exact with the Java client, so keys land where a Kafka producer puts them),
//! else the topic's sticky partition, which moves on round-robin once its batch is sealed.
//!
//! Method: drive `Partitioner` directly (it is pure state) with Kafka's own murmur2 test
//! vectors and with sequences of sealed batches.

use client::partitioner::Partitioner;

/// Kafka's `UtilsTest.testMurmur2` vectors: key bytes and the signed hash Java returns.
const KAFKA_MURMUR2: &[(&[u8], i32)] = &[
    (b"21", -973_932_308),
    (b"foobar", -790_332_482),
    (b"a-little-bit-long-string", -985_981_536),
    (b"a-little-bit-longer-string", -1_486_304_829),
    (
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
        -58_897_971,
    ),
    (b"abc", 479_470_107),
];

#[test]
fn keyed_records_follow_kafka_murmur2() {
    let mut partitioner = Partitioner::new(0);
    for &(key, hash) in KAFKA_MURMUR2 {
        assert_eq!(schema::murmur2::murmur2(key), hash, "key {key:?}");
        for partition_count in [1, 2, 3, 7, 10, 100, 1_000] {
            // Java's Utils.toPositive masks the sign bit; it never takes abs().
            let expected = (hash & 0x7fff_ffff) as u32 % partition_count;
            let chosen = partitioner.choose("topic", None, Some(key), partition_count);
            assert_eq!(
                chosen, expected,
                "key {key:?}, {partition_count} partitions"
            );
        }
    }
    // Worked by hand: "21" hashes to -973932308; masked, 1173551340; modulo 7, 3.
    assert_eq!(partitioner.choose("topic", None, Some(b"21"), 7), 3);
    assert_eq!(partitioner.choose("topic", None, Some(b"abc"), 10), 7);
}

#[test]
fn an_empty_key_is_hashed_not_sticky() {
    let mut partitioner = Partitioner::new(0);
    let expected = schema::murmur2::partition_for_key(b"", 5);
    assert_eq!(partitioner.choose("topic", None, Some(b""), 5), expected);
    assert_eq!(
        partitioner.sticky("topic"),
        None,
        "a keyed record sets no sticky partition"
    );
}

#[test]
fn explicit_partition_beats_key_and_sticky() {
    let mut partitioner = Partitioner::new(0);
    // "21" would hash to 3 of 7; the explicit partition wins anyway.
    assert_eq!(partitioner.choose("topic", Some(5), Some(b"21"), 7), 5);
    assert_eq!(partitioner.choose("topic", Some(6), None, 7), 6);
    // The partition count is not consulted for an explicit partition (the broker checks it).
    assert_eq!(partitioner.choose("topic", Some(9), None, 0), 9);
    assert_eq!(partitioner.sticky("topic"), None);
}

#[test]
fn keyless_records_stick_until_the_batch_is_sealed_then_move_round_robin() {
    let mut partitioner = Partitioner::new(1);
    for _ in 0..10 {
        assert_eq!(partitioner.choose("topic", None, None, 3), 1);
    }
    // Another partition's batch does not move the sticky partition.
    partitioner.batch_sealed("topic", 0, 3);
    assert_eq!(partitioner.choose("topic", None, None, 3), 1);
    partitioner.batch_sealed("topic", 1, 3);
    assert_eq!(partitioner.choose("topic", None, None, 3), 2);
    partitioner.batch_sealed("topic", 2, 3);
    assert_eq!(
        partitioner.choose("topic", None, None, 3),
        0,
        "wraps around"
    );
    // Keyed and explicit records in between change nothing.
    partitioner.choose("topic", None, Some(b"abc"), 3);
    partitioner.choose("topic", Some(2), None, 3);
    assert_eq!(partitioner.choose("topic", None, None, 3), 0);
}

#[test]
fn sticky_partitions_are_per_topic_and_start_at_the_seed() {
    let mut partitioner = Partitioner::new(7);
    assert_eq!(partitioner.choose("a", None, None, 4), 3, "7 mod 4");
    assert_eq!(partitioner.choose("b", None, None, 5), 2, "7 mod 5");
    partitioner.batch_sealed("a", 3, 4);
    assert_eq!(partitioner.choose("a", None, None, 4), 0);
    assert_eq!(
        partitioner.choose("b", None, None, 5),
        2,
        "topic b did not move"
    );
}
