//! Offsets retention (`ringbus serve --offsets-retention-ms`, Kafka's
//! `offsets.retention.minutes` as KIP-211 counts it): when the committed offsets of a group
//! without members expire.
//!
//! The rule. A group with members (joined, or joining a rebalance) never loses an offset. An
//! offset of a group without members expires `retention_ms` after its *clock start*, the
//! latest of three moments:
//! - its commit (so the offsets of a group that never had members, a standalone consumer's or
//!   an operator's reset, expire one by one from their commits, as in Kafka);
//! - when this coordinator saw the group lose its last member (leave, session expiry, nobody
//!   rejoining a rebalance), as Kafka counts from the group becoming Empty;
//! - when the coordinator loaded the offsets partition's table (at start-up).
//!
//! Why the load time: membership is kept in memory only, so after a restart the coordinator
//! cannot tell a group that emptied a week ago from one whose members consumed until the
//! crash. Counting from the newest commit would expire, at start-up, the offsets of a group
//! whose members were alive but had nothing new to commit for a week; counting from the load
//! never expires an offset earlier than Kafka would, at the price that a restart gives every
//! group without members a full retention again (Kafka stores when a group emptied; ringbus
//! does not yet). Taking the latest moment also gives an offset committed into an empty group
//! (a reset) a full retention of its own, where Kafka counts from when the group emptied:
//! later than Kafka, never earlier.
//!
//! Times are wall-clock milliseconds since the Unix epoch, the clock of the commit timestamps,
//! passed in by the caller (this module is pure and has no clock of its own, so the tests
//! choose `now`). A wall clock that jumps forward expires offsets early, as in Kafka.
//!
//! State: one [`ExpiryClock`] per offsets partition, beside its table, on the coordinator
//! shard. It holds a moment only for groups that had committed offsets when they emptied, and
//! forgets it once it cannot matter any more ([`ExpiryClock::sweep`]), so it never holds more
//! groups than the table.

use std::collections::HashMap;
use std::time::Duration;

use super::offsets::{Committed, OffsetKey, OffsetTable};

/// `--offsets-retention-ms` unless given: Kafka's `offsets.retention.minutes` default, 7 days.
pub const OFFSETS_RETENTION_DEFAULT_MS: u64 = 7 * 24 * 60 * 60 * 1000;

const _: () = assert!(OFFSETS_RETENTION_DEFAULT_MS == 604_800_000);

/// A retention as the signed milliseconds the arithmetic here uses; a retention beyond
/// `i64::MAX` ms (292 million years) is as good as never, and saturates.
pub fn retention_ms(retention: Duration) -> i64 {
    assert!(!retention.is_zero(), "a zero retention means none, not now");
    i64::try_from(retention.as_millis()).unwrap_or(i64::MAX)
}

/// When offsets of one offsets partition's groups start to age. See the module documentation.
///
/// Lifecycle: created when the coordinator first needs the partition, [`ExpiryClock::loaded`]
/// once its table is loaded, told of every group that loses its last member
/// ([`ExpiryClock::emptied`]), and swept by the coordinator's ticker.
#[derive(Debug, Clone, Default)]
pub struct ExpiryClock {
    /// When the table was loaded.
    loaded_at_ms: i64,
    /// When groups that had committed offsets lost their last member, by group.
    emptied_at_ms: HashMap<String, i64>,
}

/// What a sweep found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// The offsets that expired, in table order.
    pub expired: Vec<OffsetKey>,
    /// When the next offset can expire: the next sweep is due then.
    pub next_ms: i64,
}

/// What `group describe` says of a group's offsets retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetsExpiry {
    /// The broker's retention in ms; None: offsets never expire.
    pub retention_ms: Option<u64>,
    /// Since when the coordinator counts the group empty: when it lost its last member or
    /// when the table was loaded, the later. None while it has members or has no offsets.
    pub empty_since_ms: Option<i64>,
    /// When the first of its committed offsets expires. None when none will: it has members,
    /// it has no offsets, or retention is off.
    pub first_expiry_ms: Option<i64>,
    /// When the last of its committed offsets expires (None as `first_expiry_ms`).
    pub last_expiry_ms: Option<i64>,
}

impl ExpiryClock {
    /// The table was loaded at `now_ms`: every offset in it starts to age no earlier.
    pub fn loaded(&mut self, now_ms: i64) {
        self.loaded_at_ms = now_ms;
    }

    /// `group` lost its last member at `now_ms`. Only worth calling when the table holds
    /// offsets of the group (a later commit starts its own clock anyway).
    pub fn emptied(&mut self, group: &str, now_ms: i64) {
        let at = self
            .emptied_at_ms
            .entry(group.to_string())
            .or_insert(now_ms);
        *at = (*at).max(now_ms);
    }

    /// Since when a group without members counts as empty.
    pub fn empty_since_ms(&self, group: &str) -> i64 {
        let emptied = self.emptied_at_ms.get(group).copied().unwrap_or(i64::MIN);
        self.loaded_at_ms.max(emptied)
    }

    /// When `committed`, an offset of `group`, expires if the group has no members meanwhile.
    pub fn expires_at_ms(&self, group: &str, committed: Committed, retention_ms: i64) -> i64 {
        assert!(
            retention_ms > 0,
            "a retention of {retention_ms} ms: none is not a retention"
        );
        self.empty_since_ms(group)
            .max(committed.timestamp_ms)
            .saturating_add(retention_ms)
    }

    /// Finds the offsets of groups without members (`active` says which groups have members)
    /// whose retention has passed at `now_ms`, and when the next one will. Forgets the moments
    /// groups emptied that can no longer delay an expiry.
    pub fn sweep(
        &mut self,
        table: &OffsetTable,
        active: impl Fn(&str) -> bool,
        retention_ms: i64,
        now_ms: i64,
    ) -> Sweep {
        // Anything that starts to age after this sweep (a commit, a group emptying) expires at
        // least a retention from now: no sweep is needed before then for it.
        let mut next_ms = now_ms.saturating_add(retention_ms);
        let mut expired = Vec::new();
        // The table is ordered by group: ask about each group once.
        let mut current: Option<(&str, bool)> = None;
        for (key, committed) in table.iter() {
            let is_active = match current {
                Some((group, is_active)) if group == key.group => is_active,
                _ => {
                    let is_active = active(&key.group);
                    current = Some((&key.group, is_active));
                    is_active
                }
            };
            if is_active {
                continue;
            }
            let expires_at_ms = self.expires_at_ms(&key.group, committed, retention_ms);
            if expires_at_ms <= now_ms {
                expired.push(key.clone());
            } else {
                next_ms = next_ms.min(expires_at_ms);
            }
        }
        // A moment at least a retention old delays nothing: every offset it was the clock
        // start of expires now, and any offset committed since starts at its own commit.
        self.emptied_at_ms
            .retain(|_, emptied_at_ms| emptied_at_ms.saturating_add(retention_ms) > now_ms);
        assert!(
            next_ms > now_ms,
            "the next sweep at {next_ms} is not after now, {now_ms}"
        );
        Sweep { expired, next_ms }
    }

    /// The retention of `group`'s offsets as `group describe` shows it; `active` when the group
    /// has members, `retention_ms` None when offsets never expire.
    pub fn describe(
        &self,
        table: &OffsetTable,
        group: &str,
        active: bool,
        retention_ms: Option<i64>,
    ) -> OffsetsExpiry {
        let mut expiry = OffsetsExpiry {
            retention_ms: retention_ms.map(|ms| ms as u64),
            empty_since_ms: None,
            first_expiry_ms: None,
            last_expiry_ms: None,
        };
        if active || table.of_group(group).next().is_none() {
            return expiry;
        }
        expiry.empty_since_ms = Some(self.empty_since_ms(group));
        if let Some(retention_ms) = retention_ms {
            for (_, committed) in table.of_group(group) {
                let at = self.expires_at_ms(group, committed, retention_ms);
                expiry.first_expiry_ms = Some(expiry.first_expiry_ms.map_or(at, |ms| ms.min(at)));
                expiry.last_expiry_ms = Some(expiry.last_expiry_ms.map_or(at, |ms| ms.max(at)));
            }
        }
        expiry
    }
}

#[cfg(test)]
mod tests {
    //! The clock is the `now_ms` each call is given: a retention of 1,000 ms, a table loaded at
    //! 10,000, and groups that join, leave and commit at chosen moments.

    use std::collections::BTreeSet;

    use super::*;
    use crate::group::offsets::{commit_batch, tombstone_batch};

    const RETENTION_MS: i64 = 1_000;
    const LOADED_AT_MS: i64 = 10_000;

    fn key(group: &str, partition: u32) -> OffsetKey {
        OffsetKey {
            group: group.to_string(),
            topic: "orders".to_string(),
            partition,
        }
    }

    fn at(offset: u64, timestamp_ms: i64) -> Committed {
        Committed {
            offset,
            timestamp_ms,
        }
    }

    fn loaded() -> ExpiryClock {
        let mut clock = ExpiryClock::default();
        clock.loaded(LOADED_AT_MS);
        clock
    }

    /// The groups with members.
    fn members(groups: &[&str]) -> impl Fn(&str) -> bool {
        let groups: BTreeSet<String> = groups.iter().map(|group| group.to_string()).collect();
        move |group| groups.contains(group)
    }

    #[test]
    fn an_empty_groups_offsets_expire_a_retention_after_it_emptied_and_not_before() {
        let mut table = OffsetTable::default();
        table.apply(key("billing", 0), at(5, 10_100));
        table.apply(key("billing", 1), at(7, 10_200));
        let mut clock = loaded();
        // Members until 12,000, when the last one leaves.
        let none = members(&[]);
        clock.emptied("billing", 12_000);
        let early = clock.sweep(&table, &none, RETENTION_MS, 12_999);
        assert_eq!(early.expired, Vec::<OffsetKey>::new());
        assert_eq!(
            early.next_ms, 13_000,
            "the next sweep is due when they expire"
        );
        assert_eq!(
            clock.describe(&table, "billing", false, Some(RETENTION_MS)),
            OffsetsExpiry {
                retention_ms: Some(1_000),
                empty_since_ms: Some(12_000),
                first_expiry_ms: Some(13_000),
                last_expiry_ms: Some(13_000),
            }
        );
        let due = clock.sweep(&table, &none, RETENTION_MS, 13_000);
        assert_eq!(due.expired, vec![key("billing", 0), key("billing", 1)]);
        assert_eq!(due.next_ms, 14_000, "nothing else ages: one retention on");
        assert!(
            clock.emptied_at_ms.is_empty(),
            "a moment a retention old is forgotten"
        );
    }

    #[test]
    fn an_active_groups_offsets_never_expire() {
        let mut table = OffsetTable::default();
        table.apply(key("billing", 0), at(5, 0));
        table.apply(key("audit", 0), at(9, 0));
        let mut clock = loaded();
        clock.emptied("billing", 10_500);
        let billing_active = members(&["billing"]);
        for now_ms in [LOADED_AT_MS, 11_000, 1_000_000, i64::MAX - 1] {
            let sweep = clock.sweep(&table, &billing_active, RETENTION_MS, now_ms);
            assert!(
                !sweep.expired.contains(&key("billing", 0)),
                "at {now_ms}: {sweep:?}"
            );
        }
        assert_eq!(
            clock.describe(&table, "billing", true, Some(RETENTION_MS)),
            OffsetsExpiry {
                retention_ms: Some(1_000),
                empty_since_ms: None,
                first_expiry_ms: None,
                last_expiry_ms: None,
            }
        );
        // The group without members beside it expires (counted from the load).
        let sweep = clock.sweep(&table, &billing_active, RETENTION_MS, 11_000);
        assert_eq!(sweep.expired, vec![key("audit", 0)]);
    }

    #[test]
    fn a_group_that_rejoins_before_expiry_keeps_its_offsets() {
        let mut table = OffsetTable::default();
        table.apply(key("billing", 0), at(5, 10_100));
        let mut clock = loaded();
        clock.emptied("billing", 11_000);
        // A member is back at 11,500, half a retention later, and members stay until 20,000.
        let active = members(&["billing"]);
        for now_ms in [11_500, 12_000, 15_000] {
            let sweep = clock.sweep(&table, &active, RETENTION_MS, now_ms);
            assert!(sweep.expired.is_empty(), "at {now_ms}: {sweep:?}");
        }
        clock.emptied("billing", 20_000);
        let none = members(&[]);
        let sweep = clock.sweep(&table, &none, RETENTION_MS, 20_999);
        assert!(sweep.expired.is_empty(), "counted from 20,000: {sweep:?}");
        assert_eq!(sweep.next_ms, 21_000);
        assert_eq!(
            clock.sweep(&table, &none, RETENTION_MS, 21_000).expired,
            vec![key("billing", 0)]
        );
    }

    #[test]
    fn standalone_commits_expire_one_by_one_from_their_commits() {
        let mut table = OffsetTable::default();
        // Committed from outside any membership, after the load.
        table.apply(key("reports", 0), at(1, 10_500));
        table.apply(key("reports", 1), at(2, 10_900));
        let mut clock = loaded();
        let none = members(&[]);
        let expiry = clock.describe(&table, "reports", false, Some(RETENTION_MS));
        assert_eq!(expiry.empty_since_ms, Some(LOADED_AT_MS));
        assert_eq!(expiry.first_expiry_ms, Some(11_500));
        assert_eq!(expiry.last_expiry_ms, Some(11_900));
        let sweep = clock.sweep(&table, &none, RETENTION_MS, 11_500);
        assert_eq!(sweep.expired, vec![key("reports", 0)]);
        assert_eq!(sweep.next_ms, 11_900);
        // A reset into a group that emptied earlier gets a full retention of its own.
        clock.emptied("reports", 10_600);
        table.apply(key("reports", 0), at(0, 11_400));
        let sweep = clock.sweep(&table, &none, RETENTION_MS, 12_000);
        assert_eq!(sweep.expired, vec![key("reports", 1)]);
        assert_eq!(sweep.next_ms, 12_400);
    }

    #[test]
    fn after_a_restart_offsets_age_from_the_load_not_from_their_commits() {
        let mut table = OffsetTable::default();
        // Committed long before the restart, by members that may have run until the crash.
        table.apply(key("billing", 0), at(5, 100));
        let mut clock = loaded();
        let none = members(&[]);
        let sweep = clock.sweep(&table, &none, RETENTION_MS, LOADED_AT_MS + 999);
        assert!(sweep.expired.is_empty(), "{sweep:?}");
        assert_eq!(sweep.next_ms, LOADED_AT_MS + RETENTION_MS);
        assert_eq!(
            clock
                .sweep(&table, &none, RETENTION_MS, LOADED_AT_MS + RETENTION_MS)
                .expired,
            vec![key("billing", 0)]
        );
    }

    #[test]
    fn off_or_without_offsets_nothing_is_described_as_expiring() {
        let mut table = OffsetTable::default();
        table.apply(key("billing", 0), at(5, 10_100));
        let clock = loaded();
        assert_eq!(
            clock.describe(&table, "billing", false, None),
            OffsetsExpiry {
                retention_ms: None,
                empty_since_ms: Some(LOADED_AT_MS),
                first_expiry_ms: None,
                last_expiry_ms: None,
            }
        );
        assert_eq!(
            clock.describe(&table, "unknown", false, Some(RETENTION_MS)),
            OffsetsExpiry {
                retention_ms: Some(1_000),
                empty_since_ms: None,
                first_expiry_ms: None,
                last_expiry_ms: None,
            }
        );
        assert_eq!(retention_ms(Duration::from_secs(2)), 2_000);
        assert_eq!(retention_ms(Duration::MAX), i64::MAX);
    }

    #[test]
    fn expired_offsets_stay_gone_after_a_restart_and_the_others_remain() {
        // Two groups commit; `idle` then has no members, `busy` has.
        let commits = vec![
            (key("idle", 0), at(3, 10_100)),
            (key("idle", 1), at(4, 10_100)),
            (key("busy", 0), at(8, 10_100)),
        ];
        let mut log = vec![commit_batch(&commits, 10_100)];
        let mut table = OffsetTable::default();
        for (key, committed) in &commits {
            table.apply(key.clone(), *committed);
        }
        let before_expiry = table.clone();
        let mut clock = loaded();
        let sweep = clock.sweep(&table, members(&["busy"]), RETENTION_MS, 11_100);
        assert_eq!(sweep.expired, vec![key("idle", 0), key("idle", 1)]);
        // Expiry as the coordinator does it: the tombstones appended, then applied.
        log.push(tombstone_batch(&sweep.expired, 11_100));
        for key in &sweep.expired {
            assert!(table.remove(key).is_some());
        }
        let after_expiry = table.clone();
        // A later commit of `busy`.
        let later = (key("busy", 1), at(9, 11_200));
        log.push(commit_batch(std::slice::from_ref(&later), 11_200));
        table.apply(later.0.clone(), later.1);
        // Offsets 0-2 the commits, 3-4 the tombstones, 5 the later commit.
        let mut base_offset = 0;
        for batch in &mut log {
            schema::batch::set_base_offset(batch, base_offset);
            base_offset += schema::batch::records(batch).expect("records").count() as i64;
        }
        assert_eq!(base_offset, 6);
        let replay = |mut table: OffsetTable, from: u64| {
            for batch in &log {
                table.replay_batch(batch, from).expect("replays");
            }
            table
        };

        // Restart from the log alone: the tombstones are replayed.
        let replayed = replay(OffsetTable::default(), 0);
        assert_eq!(replayed, table);
        assert_eq!(replayed.get(&key("idle", 0)), None);
        assert_eq!(replayed.get(&key("idle", 1)), None);
        assert_eq!(replayed.get(&key("busy", 0)), Some(at(8, 10_100)));
        assert_eq!(replayed.get(&key("busy", 1)), Some(at(9, 11_200)));

        // Restart from a snapshot taken after the expiry (through offset 5) and the log after
        // it: the snapshot holds no expired offset.
        let (through, snapshot) = OffsetTable::decode(&after_expiry.encode(5)).expect("decodes");
        assert_eq!(snapshot.groups(), vec!["busy"]);
        assert_eq!(replay(snapshot, through), table);

        // Restart from a snapshot taken before the expiry (through offset 3): the tombstones
        // after it delete what it holds.
        let (through, snapshot) = OffsetTable::decode(&before_expiry.encode(3)).expect("decodes");
        assert_eq!(replay(snapshot, through), table);
    }
}
