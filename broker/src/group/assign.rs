//! Partition assignment for consumer groups: given the members of a new generation and the topics
//! each subscribes to, decide which member consumes which partition.
//!
//! Pure functions: no I/O, no clock, no shard state. The group coordinator calls [`assign`] on
//! the group's shard when a rebalance completes (membership.rs) and hands each member its share.
//! The strategies are Kafka's `range` and `roundrobin`, so a group behaves as Kafka users expect.
//!
//! Invariants of every result (checked by [`validate`], which membership.rs asserts after every
//! completion and the property tests below assert on random inputs):
//! - every partition of every subscribed topic that exists goes to exactly one member, and that
//!   member subscribes to the topic; nothing else is assigned;
//! - every member has an entry, possibly empty; a topic's partition list is never empty and
//!   strictly ascends;
//! - the result depends only on the set of (member, topic) subscriptions: not on the order of
//!   the members given, nor on duplicate topics in a subscription.

use std::collections::{BTreeMap, BTreeSet};

/// Which strategy shares a group's partitions out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    /// Kafka's `range`: per topic, the subscribers sorted by member id each take a contiguous run
    /// of partitions, the first ones one more when the count does not divide. Co-partitioned
    /// topics land together (partition p of every topic on the same member), at the cost of
    /// imbalance across topics: the first member takes the extra partition of every topic.
    Range,
    /// Kafka's `roundrobin`: all partitions, sorted by (topic, partition), dealt to the members
    /// sorted by id in turn, skipping members not subscribed to the partition's topic. Balanced
    /// to within one partition when subscriptions are uniform.
    RoundRobin,
}

/// A member's assignment: topic -> partitions, ascending. Topics with no partitions for this
/// member are absent rather than mapped to an empty list.
pub type Assignment = BTreeMap<String, Vec<u32>>;

/// Shares the partitions out.
///
/// `members`: (member id, subscribed topics); a member id given twice has its subscriptions
/// merged. `partition_counts`: topic -> partition count, for topics that exist (a subscribed
/// topic missing from it is skipped: it has no partitions). Returns an entry for EVERY member
/// (possibly empty), keyed by member id.
///
/// Cost: O(subscriptions · log + partitions · log members); memory proportional to the result.
pub fn assign(
    assignor: Assignor,
    members: &[(String, Vec<String>)],
    partition_counts: &BTreeMap<String, u32>,
) -> BTreeMap<String, Assignment> {
    // Sorted sets are what make the result independent of the order of `members` and harmless
    // to duplicates: everything below walks these in key order.
    let mut subscriptions: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (member_id, topics) in members {
        let subscribed = subscriptions.entry(member_id.as_str()).or_default();
        for topic in topics {
            if partition_counts.get(topic).is_some_and(|&count| count > 0) {
                subscribed.insert(topic.as_str());
            }
        }
    }
    let member_ids: Vec<&str> = subscriptions.keys().copied().collect();
    // Topic -> indexes into `member_ids` of its subscribers. Pushed while walking members in id
    // order, so each list ascends, which both strategies rely on.
    let mut subscribers: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (member_index, topics) in subscriptions.values().enumerate() {
        for topic in topics {
            subscribers.entry(topic).or_default().push(member_index);
        }
    }

    let mut shares: Vec<BTreeMap<&str, Vec<u32>>> = vec![BTreeMap::new(); member_ids.len()];
    match assignor {
        Assignor::Range => {
            for (&topic, topic_subscribers) in &subscribers {
                let partitions = partition_counts[topic];
                assign_range(topic, partitions, topic_subscribers, &mut shares);
            }
        }
        Assignor::RoundRobin => {
            assign_round_robin(
                &subscribers,
                partition_counts,
                member_ids.len(),
                &mut shares,
            );
        }
    }

    member_ids
        .iter()
        .zip(shares)
        .map(|(&member_id, share)| {
            let assignment = share
                .into_iter()
                .map(|(topic, partitions)| (topic.to_string(), partitions))
                .collect();
            (member_id.to_string(), assignment)
        })
        .collect()
}

/// One topic's range split. With n partitions over m subscribers each takes n / m, and the first
/// n % m one more. Worked example, n = 7, m = 3: base 2, extra 1, so the runs are 0..3, 3..5,
/// 5..7. With m > n the last m - n members take nothing (idle, as in Kafka).
fn assign_range<'a>(
    topic: &'a str,
    partitions: u32,
    topic_subscribers: &[usize],
    shares: &mut [BTreeMap<&'a str, Vec<u32>>],
) {
    // u64 so that neither the member count nor `next + length` can overflow.
    let member_count = topic_subscribers.len() as u64;
    let base = u64::from(partitions) / member_count;
    let extra = u64::from(partitions) % member_count;
    let mut next: u64 = 0;
    for (position, &member_index) in topic_subscribers.iter().enumerate() {
        let length = base + u64::from((position as u64) < extra);
        let end = next + length;
        assert!(
            end <= u64::from(partitions),
            "topic {topic:?}: range end {end} past partition count {partitions}"
        );
        if length > 0 {
            // Both bounds are <= partitions, a u32, so the casts are exact.
            let run: Vec<u32> = (next as u32..end as u32).collect();
            shares[member_index].insert(topic, run);
        }
        next = end;
    }
    assert_eq!(
        next,
        u64::from(partitions),
        "topic {topic:?}: range split dealt {next} of {partitions} partitions"
    );
}

/// Deals every (topic, partition), in sorted order, to the members in id order, cycling. The
/// cursor is the member whose turn is next; a member not subscribed to the pair's topic is
/// skipped and the turn passes to the next subscriber after it (Kafka's circular iterator).
/// Finding that subscriber is a binary search in the topic's sorted subscriber list instead of a
/// walk over every member, so one member's topic in a large group costs log m per partition.
fn assign_round_robin<'a>(
    subscribers: &BTreeMap<&'a str, Vec<usize>>,
    partition_counts: &BTreeMap<String, u32>,
    member_count: usize,
    shares: &mut [BTreeMap<&'a str, Vec<u32>>],
) {
    let mut cursor: usize = 0;
    for (&topic, topic_subscribers) in subscribers {
        assert!(
            !topic_subscribers.is_empty(),
            "topic {topic:?} has no subscribers"
        );
        for partition in 0..partition_counts[topic] {
            let at = topic_subscribers.partition_point(|&index| index < cursor);
            // Past the last subscriber: wrap to the first, as the cycle does.
            let member_index = topic_subscribers
                .get(at)
                .copied()
                .unwrap_or(topic_subscribers[0]);
            shares[member_index]
                .entry(topic)
                .or_default()
                .push(partition);
            cursor = (member_index + 1) % member_count;
        }
    }
}

/// Checks that `result` is a valid assignment of `partition_counts` to `members` (the invariants
/// in the module doc, except determinism). Returns the first violation found, described.
/// Cost: O(partitions + subscriptions · log).
pub(super) fn validate(
    members: &[(String, Vec<String>)],
    partition_counts: &BTreeMap<String, u32>,
    result: &BTreeMap<String, Assignment>,
) -> Result<(), String> {
    let mut subscriptions: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (member_id, topics) in members {
        let subscribed = subscriptions.entry(member_id.as_str()).or_default();
        subscribed.extend(topics.iter().map(String::as_str));
    }
    let result_ids: Vec<&str> = result.keys().map(String::as_str).collect();
    let member_ids: Vec<&str> = subscriptions.keys().copied().collect();
    if result_ids != member_ids {
        return Err(format!(
            "result is for members {result_ids:?}, not {member_ids:?}"
        ));
    }
    // Topic -> owner of each partition, for every subscribed topic that exists.
    let mut owners: BTreeMap<&str, Vec<Option<&str>>> = BTreeMap::new();
    for topics in subscriptions.values() {
        for &topic in topics {
            if let Some(&count) = partition_counts.get(topic) {
                owners
                    .entry(topic)
                    .or_insert_with(|| vec![None; count as usize]);
            }
        }
    }
    for (member_id, assignment) in result {
        for (topic, partitions) in assignment {
            if !subscriptions[member_id.as_str()].contains(topic.as_str()) {
                return Err(format!(
                    "member {member_id:?} given unsubscribed topic {topic:?}"
                ));
            }
            let Some(topic_owners) = owners.get_mut(topic.as_str()) else {
                return Err(format!(
                    "member {member_id:?} given missing topic {topic:?}"
                ));
            };
            if partitions.is_empty() {
                return Err(format!(
                    "member {member_id:?}: empty list for topic {topic:?}"
                ));
            }
            if partitions.windows(2).any(|pair| pair[0] >= pair[1]) {
                return Err(format!(
                    "member {member_id:?}: {topic:?} {partitions:?} not ascending"
                ));
            }
            for &partition in partitions {
                let Some(owner) = topic_owners.get_mut(partition as usize) else {
                    return Err(format!(
                        "member {member_id:?}: no partition {topic:?}/{partition}"
                    ));
                };
                if let Some(first) = owner.replace(member_id) {
                    return Err(format!(
                        "{topic:?}/{partition}: both {first:?} and {member_id:?}"
                    ));
                }
            }
        }
    }
    for (topic, topic_owners) in &owners {
        if let Some(partition) = topic_owners.iter().position(Option::is_none) {
            return Err(format!("{topic:?}/{partition} assigned to no member"));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The workspace's one seeded PRNG (fastrand), fully determined by its seed, so a
    /// failure replays exactly.
    pub(in crate::group) struct Rng(fastrand::Rng);

    impl Rng {
        pub(in crate::group) fn new(seed: u64) -> Rng {
            Rng(fastrand::Rng::with_seed(seed))
        }

        /// Uniform in `0..bound`; `bound` > 0.
        pub(in crate::group) fn below(&mut self, bound: u64) -> u64 {
            self.0.u64(0..bound)
        }

        pub(in crate::group) fn index(&mut self, length: usize) -> usize {
            self.below(length as u64) as usize
        }

        pub(in crate::group) fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    /// The seeds a randomised test runs: `RINGBUS_SEED` alone if set (to replay a failure),
    /// else `0..count`. A fixed range keeps CI deterministic.
    pub(in crate::group) fn seeds(count: u64) -> Vec<u64> {
        match std::env::var("RINGBUS_SEED") {
            Ok(seed) => vec![seed.parse().expect("RINGBUS_SEED must be a u64")],
            Err(_) => (0..count).collect(),
        }
    }

    /// Prints the seed if the test panics while this is alive.
    pub(in crate::group) struct SeedReport(pub(in crate::group) u64);

    impl Drop for SeedReport {
        fn drop(&mut self) {
            if std::thread::panicking() {
                eprintln!("failed at seed {0}; replay with RINGBUS_SEED={0}", self.0);
            }
        }
    }

    fn members(list: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        list.iter()
            .map(|(id, topics)| {
                (
                    id.to_string(),
                    topics.iter().map(|t| t.to_string()).collect(),
                )
            })
            .collect()
    }

    fn counts(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
        list.iter()
            .map(|(topic, count)| (topic.to_string(), *count))
            .collect()
    }

    fn share(list: &[(&str, &[u32])]) -> Assignment {
        list.iter()
            .map(|(topic, partitions)| (topic.to_string(), partitions.to_vec()))
            .collect()
    }

    fn checked(
        assignor: Assignor,
        members: &[(String, Vec<String>)],
        partition_counts: &BTreeMap<String, u32>,
    ) -> BTreeMap<String, Assignment> {
        let result = assign(assignor, members, partition_counts);
        assert_eq!(
            validate(members, partition_counts, &result),
            Ok(()),
            "{assignor:?}"
        );
        result
    }

    #[test]
    fn range_three_members_six_partitions_two_each() {
        let group = members(&[("m3", &["t"]), ("m1", &["t"]), ("m2", &["t"])]);
        let result = checked(Assignor::Range, &group, &counts(&[("t", 6)]));
        assert_eq!(result["m1"], share(&[("t", &[0, 1])]));
        assert_eq!(result["m2"], share(&[("t", &[2, 3])]));
        assert_eq!(result["m3"], share(&[("t", &[4, 5])]));
    }

    #[test]
    fn range_uneven_split_gives_first_members_one_more() {
        let group = members(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let result = checked(Assignor::Range, &group, &counts(&[("t", 7)]));
        assert_eq!(result["a"], share(&[("t", &[0, 1, 2])]));
        assert_eq!(result["b"], share(&[("t", &[3, 4])]));
        assert_eq!(result["c"], share(&[("t", &[5, 6])]));
    }

    #[test]
    fn range_more_members_than_partitions_leaves_extras_idle() {
        let group = members(&[
            ("m1", &["t"]),
            ("m2", &["t"]),
            ("m3", &["t"]),
            ("m4", &["t"]),
        ]);
        for assignor in [Assignor::Range, Assignor::RoundRobin] {
            let result = checked(assignor, &group, &counts(&[("t", 2)]));
            assert_eq!(result.len(), 4, "{assignor:?}: every member has an entry");
            assert_eq!(result["m1"], share(&[("t", &[0])]), "{assignor:?}");
            assert_eq!(result["m2"], share(&[("t", &[1])]), "{assignor:?}");
            assert_eq!(result["m3"], Assignment::new(), "{assignor:?}");
            assert_eq!(result["m4"], Assignment::new(), "{assignor:?}");
        }
    }

    /// Kafka's RangeAssignor doc example: two topics of 3 partitions, the first member takes
    /// the extra partition of both.
    #[test]
    fn range_two_topics_matches_kafka_example() {
        let group = members(&[("c1", &["t1", "t0"]), ("c0", &["t0", "t1"])]);
        let result = checked(Assignor::Range, &group, &counts(&[("t0", 3), ("t1", 3)]));
        assert_eq!(result["c0"], share(&[("t0", &[0, 1]), ("t1", &[0, 1])]));
        assert_eq!(result["c1"], share(&[("t0", &[2]), ("t1", &[2])]));
    }

    /// Kafka's RoundRobinAssignor doc examples: uniform, then non-uniform subscriptions.
    #[test]
    fn round_robin_two_topics_matches_kafka_examples() {
        let group = members(&[("c0", &["t0", "t1"]), ("c1", &["t0", "t1"])]);
        let result = checked(
            Assignor::RoundRobin,
            &group,
            &counts(&[("t0", 3), ("t1", 3)]),
        );
        assert_eq!(result["c0"], share(&[("t0", &[0, 2]), ("t1", &[1])]));
        assert_eq!(result["c1"], share(&[("t0", &[1]), ("t1", &[0, 2])]));

        let group = members(&[
            ("c0", &["t0"]),
            ("c1", &["t0", "t1"]),
            ("c2", &["t0", "t1", "t2"]),
        ]);
        let topics = counts(&[("t0", 1), ("t1", 2), ("t2", 3)]);
        let result = checked(Assignor::RoundRobin, &group, &topics);
        assert_eq!(result["c0"], share(&[("t0", &[0])]));
        assert_eq!(result["c1"], share(&[("t1", &[0])]));
        assert_eq!(result["c2"], share(&[("t1", &[1]), ("t2", &[0, 1, 2])]));
    }

    #[test]
    fn missing_and_empty_topics_are_skipped() {
        let group = members(&[("m1", &["absent", "t", "t", "zero"]), ("m2", &[])]);
        for assignor in [Assignor::Range, Assignor::RoundRobin] {
            let result = checked(
                assignor,
                &group,
                &counts(&[("t", 2), ("zero", 0), ("x", 4)]),
            );
            assert_eq!(result["m1"], share(&[("t", &[0, 1])]), "{assignor:?}");
            assert_eq!(result["m2"], Assignment::new(), "{assignor:?}");
        }
        assert!(assign(Assignor::Range, &[], &counts(&[("t", 2)])).is_empty());
    }

    #[test]
    fn validate_rejects_bad_assignments() {
        let group = members(&[("m1", &["t"]), ("m2", &["t"])]);
        let topics = counts(&[("t", 2), ("u", 1)]);
        let good = checked(Assignor::Range, &group, &topics);
        let mut bad = good.clone();
        bad.get_mut("m2").unwrap().insert("t".into(), vec![0, 1]);
        assert!(
            validate(&group, &topics, &bad)
                .unwrap_err()
                .contains("both")
        );
        let mut bad = good.clone();
        bad.get_mut("m2").unwrap().remove("t");
        assert!(
            validate(&group, &topics, &bad)
                .unwrap_err()
                .contains("no member")
        );
        let mut bad = good.clone();
        bad.get_mut("m1").unwrap().insert("u".into(), vec![0]);
        assert!(
            validate(&group, &topics, &bad)
                .unwrap_err()
                .contains("unsubscribed")
        );
        let mut bad = good.clone();
        bad.get_mut("m1").unwrap().insert("t".into(), vec![0, 5]);
        assert!(
            validate(&group, &topics, &bad)
                .unwrap_err()
                .contains("no partition")
        );
        let mut bad = good;
        bad.remove("m1");
        assert!(
            validate(&group, &topics, &bad)
                .unwrap_err()
                .contains("members")
        );
    }

    /// Random groups over a small topic universe: some topics missing or empty, duplicate and
    /// unknown topics in subscriptions, members given in random order, uniform subscriptions
    /// half the time.
    #[test]
    fn random_assignments_hold_invariants() {
        for seed in seeds(2_000) {
            let _report = SeedReport(seed);
            let mut rng = Rng::new(seed);
            let universe = ["a", "b", "c", "d", "e"];
            let mut topics = BTreeMap::new();
            for topic in universe {
                if rng.chance(80) {
                    topics.insert(topic.to_string(), rng.below(12) as u32);
                }
            }
            let uniform = rng.chance(50);
            let shared: Vec<String> = pick_topics(&mut rng, &universe);
            let member_count = 1 + rng.index(9);
            let group: Vec<(String, Vec<String>)> = (0..member_count)
                .map(|index| {
                    let subscribed = if uniform {
                        shared.clone()
                    } else {
                        pick_topics(&mut rng, &universe)
                    };
                    (
                        format!("member-{}", rng.below(1_000) * 100 + index as u64),
                        subscribed,
                    )
                })
                .collect();
            for assignor in [Assignor::Range, Assignor::RoundRobin] {
                let result = checked(assignor, &group, &topics);
                check_balance(assignor, uniform, &group, &topics, &result);
                // Same set of subscriptions in another order, with duplicates: same result.
                let mut shuffled = group.clone();
                for index in (1..shuffled.len()).rev() {
                    shuffled.swap(index, rng.index(index + 1));
                }
                for (_, subscribed) in &mut shuffled {
                    if let Some(topic) = subscribed.first().cloned() {
                        subscribed.push(topic);
                    }
                    subscribed.reverse();
                }
                assert_eq!(assign(assignor, &shuffled, &topics), result, "{assignor:?}");
            }
        }
    }

    fn pick_topics(rng: &mut Rng, universe: &[&str]) -> Vec<String> {
        let mut picked: Vec<String> = universe
            .iter()
            .filter(|_| rng.chance(50))
            .map(|t| t.to_string())
            .collect();
        if rng.chance(20) {
            picked.push("unknown".to_string());
        }
        if rng.chance(20) && !picked.is_empty() {
            picked.push(picked[0].clone());
        }
        picked
    }

    /// Range: per topic, the subscribers' counts differ by at most one and each run is
    /// contiguous. Round robin with uniform subscriptions: total counts differ by at most one.
    fn check_balance(
        assignor: Assignor,
        uniform: bool,
        group: &[(String, Vec<String>)],
        topics: &BTreeMap<String, u32>,
        result: &BTreeMap<String, Assignment>,
    ) {
        let spread = |counts: &[usize]| {
            counts.iter().max().copied().unwrap_or(0) - counts.iter().min().copied().unwrap_or(0)
        };
        match assignor {
            Assignor::Range => {
                for topic in topics.keys() {
                    let counts: Vec<usize> = group
                        .iter()
                        .filter(|(_, subscribed)| subscribed.contains(topic))
                        .map(|(id, _)| id)
                        .map(|id| {
                            result[id].get(topic).map_or(0, |partitions| {
                                let contiguous = partitions.windows(2).all(|p| p[1] == p[0] + 1);
                                assert!(contiguous, "{id}: {topic} {partitions:?} not contiguous");
                                partitions.len()
                            })
                        })
                        .collect();
                    assert!(spread(&counts) <= 1, "range {topic}: counts {counts:?}");
                }
            }
            Assignor::RoundRobin if uniform => {
                let counts: Vec<usize> = result
                    .values()
                    .map(|share| share.values().map(Vec::len).sum())
                    .collect();
                assert!(spread(&counts) <= 1, "round robin: counts {counts:?}");
            }
            Assignor::RoundRobin => {}
        }
    }
}
