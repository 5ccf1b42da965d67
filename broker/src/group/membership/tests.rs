//! Scenario tests of the group membership state machine: each drives a `Group` through one
//! protocol path (joins, expiry, rebalance deadline, leave, commits, limits) with explicit
//! instants and checks every answer and the resulting state.

use super::*;

const SESSION: Duration = Duration::from_secs(10);
const REBALANCE: Duration = Duration::from_secs(5);

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn counts(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
    list.iter()
        .map(|(topic, count)| (topic.to_string(), *count))
        .collect()
}

fn request(member_id: &str, topics: &[&str]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        client_id: format!("client-{member_id}"),
        topics: topics.iter().map(|topic| topic.to_string()).collect(),
        session_timeout: SESSION,
        rebalance_timeout: REBALANCE,
        assignor: Assignor::Range,
    }
}

/// Joins a new member that the caller names `id`.
fn join_new(group: &mut Group, id: &str, topics: &[&str], now: Instant) {
    let joined = group.join(request("", topics), now, || id.to_string());
    assert_eq!(joined, Ok(id.to_string()));
}

/// An existing member rejoins with its current subscription.
fn rejoin(group: &mut Group, id: &str, now: Instant) {
    let view = group
        .members()
        .into_iter()
        .find(|view| view.member_id == id)
        .unwrap();
    let topics: Vec<&str> = view.topics.iter().map(String::as_str).collect();
    assert_eq!(
        group.join(request(id, &topics), now, || unreachable!()),
        Ok(id.to_string())
    );
}

/// A group whose members `ids` all joined at `now` and completed generation 1.
fn stable(
    ids: &[&str],
    topics: &[&str],
    partition_counts: &BTreeMap<String, u32>,
    now: Instant,
) -> Group {
    let mut group = Group::new("g".to_string());
    for id in ids {
        join_new(&mut group, id, topics, now);
    }
    let completed = group.try_complete(now, partition_counts).unwrap();
    assert_eq!(completed.generation, 1);
    group
}

/// Member id -> its partitions of topic "t".
fn shares_of_t(completed: &Completed) -> BTreeMap<&str, Vec<u32>> {
    let share = |joined: &Joined| joined.assignment.get("t").cloned().unwrap_or_default();
    completed
        .joined
        .iter()
        .map(|joined| (joined.member_id.as_str(), share(joined)))
        .collect()
}

fn nothing() -> Ticked {
    Ticked {
        expired: Vec::new(),
        completed: None,
    }
}

#[test]
fn three_members_join_one_after_another() {
    let t0 = Instant::now();
    let topics = counts(&[("t", 6)]);
    let mut group = Group::new("g".to_string());
    assert_eq!(
        (group.state(), group.generation(), group.assignor()),
        (GroupState::Empty, 0, None)
    );
    join_new(&mut group, "m1", &["t"], t0);
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    let first = group.try_complete(t0, &topics).unwrap();
    assert_eq!(
        shares_of_t(&first),
        BTreeMap::from([("m1", vec![0, 1, 2, 3, 4, 5])])
    );
    assert_eq!((first.generation, first.joined[0].member_count), (1, 1));
    assert_eq!(group.heartbeat("m1", 1, t0), Ok(()));

    join_new(&mut group, "m2", &["t"], t0 + ms(100));
    assert_eq!(
        group.try_complete(t0 + ms(100), &topics),
        None,
        "m1 has not rejoined"
    );
    assert_eq!(
        group.heartbeat("m1", 1, t0 + ms(200)),
        Err(GroupError::RebalanceInProgress)
    );
    rejoin(&mut group, "m1", t0 + ms(300));
    let second = group.try_complete(t0 + ms(300), &topics).unwrap();
    assert_eq!(second.generation, 2);
    assert_eq!(
        shares_of_t(&second),
        BTreeMap::from([("m1", vec![0, 1, 2]), ("m2", vec![3, 4, 5])])
    );

    join_new(&mut group, "m3", &["t"], t0 + ms(400));
    assert_eq!(
        group.heartbeat("m2", 2, t0 + ms(400)),
        Err(GroupError::RebalanceInProgress)
    );
    rejoin(&mut group, "m1", t0 + ms(500));
    assert_eq!(
        group.try_complete(t0 + ms(500), &topics),
        None,
        "m2 has not rejoined"
    );
    rejoin(&mut group, "m2", t0 + ms(600));
    let third = group.try_complete(t0 + ms(600), &topics).unwrap();
    assert_eq!(third.generation, 3);
    assert!(
        third
            .joined
            .iter()
            .all(|joined| joined.generation == 3 && joined.member_count == 3)
    );
    let expected = BTreeMap::from([("m1", vec![0, 1]), ("m2", vec![2, 3]), ("m3", vec![4, 5])]);
    assert_eq!(shares_of_t(&third), expected);
    assert_eq!(group.state(), GroupState::Stable);

    let stale = GroupError::IllegalGeneration {
        generation: 2,
        current: 3,
    };
    assert_eq!(group.heartbeat("m1", 2, t0 + ms(700)), Err(stale.clone()));
    assert_eq!(group.check_commit("m1", 2, false), Err(stale));
    assert_eq!(group.heartbeat("m3", 3, t0 + ms(700)), Ok(()));
    assert_eq!(group.check_commit("m3", 3, false), Ok(()));
    let views = group.members();
    assert_eq!(
        views
            .iter()
            .map(|view| view.member_id.as_str())
            .collect::<Vec<_>>(),
        ["m1", "m2", "m3"]
    );
    assert_eq!(views[2].assignment, third.joined[2].assignment);
    assert_eq!(views[2].client_id, "client-");
}

#[test]
fn silent_member_expires_after_session_timeout() {
    let t0 = Instant::now();
    let topics = counts(&[("t", 6)]);
    let mut group = stable(&["m1", "m2", "m3"], &["t"], &topics, t0);
    assert_eq!(group.next_deadline(), Some(t0 + SESSION));
    for id in ["m1", "m2"] {
        assert_eq!(group.heartbeat(id, 1, t0 + ms(6_000)), Ok(()));
    }
    assert_eq!(group.next_deadline(), Some(t0 + SESSION), "m3's deadline");
    assert_eq!(group.tick(t0 + SESSION - ms(1), &topics), nothing());
    assert_eq!(
        (group.member_count(), group.state()),
        (3, GroupState::Stable)
    );

    let ticked = group.tick(t0 + SESSION, &topics);
    assert_eq!(
        ticked,
        Ticked {
            expired: vec!["m3".to_string()],
            completed: None
        }
    );
    assert_eq!(
        (group.member_count(), group.state()),
        (2, GroupState::PreparingRebalance)
    );
    assert_eq!(
        group.heartbeat("m3", 1, t0 + SESSION),
        Err(GroupError::UnknownMember {
            member_id: "m3".into()
        })
    );
    assert_eq!(
        group.heartbeat("m1", 1, t0 + SESSION),
        Err(GroupError::RebalanceInProgress)
    );
    rejoin(&mut group, "m1", t0 + SESSION + ms(100));
    rejoin(&mut group, "m2", t0 + SESSION + ms(200));
    let completed = group.try_complete(t0 + SESSION + ms(200), &topics).unwrap();
    assert_eq!(completed.generation, 2);
    assert_eq!(
        shares_of_t(&completed),
        BTreeMap::from([("m1", vec![0, 1, 2]), ("m2", vec![3, 4, 5])])
    );
}

#[test]
fn member_not_rejoining_is_dropped_at_rebalance_deadline() {
    let t0 = Instant::now();
    let topics = counts(&[("t", 6)]);
    let mut group = stable(&["m1", "m2", "m3"], &["t"], &topics, t0);
    // The deadline is set by the largest rebalance timeout, here the joiner's.
    let patient = JoinRequest {
        rebalance_timeout: REBALANCE * 2,
        ..request("", &["t"])
    };
    let joined = group.join(patient, t0 + ms(1_000), || "m4".to_string());
    assert_eq!(joined, Ok("m4".to_string()));
    let deadline = t0 + ms(1_000) + REBALANCE * 2;
    rejoin(&mut group, "m1", t0 + ms(2_000));
    rejoin(&mut group, "m2", t0 + ms(3_000));
    // m3 stays alive but does not rejoin.
    assert_eq!(
        group.heartbeat("m3", 1, t0 + ms(4_000)),
        Err(GroupError::RebalanceInProgress)
    );
    assert_eq!(group.next_deadline(), Some(deadline));
    assert_eq!(group.tick(deadline - ms(1), &topics), nothing());
    let ticked = group.tick(deadline, &topics);
    assert!(ticked.expired.is_empty(), "{ticked:?}");
    let completed = ticked.completed.unwrap();
    assert_eq!(
        (completed.generation, completed.removed.clone()),
        (2, vec!["m3".to_string()])
    );
    let expected = BTreeMap::from([("m1", vec![0, 1]), ("m2", vec![2, 3]), ("m4", vec![4, 5])]);
    assert_eq!(shares_of_t(&completed), expected);
    assert_eq!(
        group.heartbeat("m3", 1, deadline),
        Err(GroupError::UnknownMember {
            member_id: "m3".into()
        })
    );
}

#[test]
fn rebalance_deadline_with_nobody_rejoined_empties_group() {
    let t0 = Instant::now();
    let topics = counts(&[("t", 2)]);
    let mut group = stable(&["m1", "m2"], &["t"], &topics, t0);
    group.start_rebalance(t0 + ms(1));
    for id in ["m1", "m2"] {
        assert_eq!(
            group.heartbeat(id, 1, t0 + REBALANCE),
            Err(GroupError::RebalanceInProgress)
        );
    }
    let ticked = group.tick(t0 + ms(1) + REBALANCE, &topics);
    assert_eq!(
        ticked,
        Ticked {
            expired: vec!["m1".into(), "m2".into()],
            completed: None
        }
    );
    assert_eq!(
        (group.state(), group.generation(), group.next_deadline()),
        (GroupState::Empty, 2, None)
    );
}

#[test]
fn waiting_member_is_not_expired_by_session_timeout() {
    let t0 = Instant::now();
    let topics = counts(&[("t", 2)]);
    let short = |id: &str| JoinRequest {
        session_timeout: ms(1_000),
        rebalance_timeout: ms(60_000),
        ..request(id, &["t"])
    };
    let mut group = Group::new("g".to_string());
    for id in ["m1", "m2"] {
        assert_eq!(
            group.join(short(""), t0, || id.to_string()),
            Ok(id.to_string())
        );
    }
    group.try_complete(t0, &topics).unwrap();
    assert_eq!(
        group.join(short("m1"), t0 + ms(500), || unreachable!()),
        Ok("m1".into())
    );
    // m2 keeps its session alive for 5 s without rejoining; m1 waits all along, its own
    // session deadline (t0 + 1.5 s) long past.
    for step in 1..=10 {
        let now = t0 + ms(500) * step;
        assert_eq!(
            group.heartbeat("m2", 1, now),
            Err(GroupError::RebalanceInProgress)
        );
        assert_eq!(group.tick(now, &topics), nothing(), "step {step}");
        assert_eq!(
            group.next_deadline(),
            Some(now + ms(1_000)),
            "m2's deadline, not m1's"
        );
    }
    assert_eq!(
        group.join(short("m2"), t0 + ms(5_000), || unreachable!()),
        Ok("m2".into())
    );
    let completed = group.try_complete(t0 + ms(5_000), &topics).unwrap();
    assert_eq!(
        shares_of_t(&completed),
        BTreeMap::from([("m1", vec![0]), ("m2", vec![1])])
    );
}

#[test]
fn leave_starts_rebalance_that_completes_once_the_rest_rejoin() {
    let t0 = Instant::now();
    let topics = counts(&[("t", 4)]);
    let mut group = stable(&["m1", "m2", "m3"], &["t"], &topics, t0);
    assert_eq!(group.leave("m3", t0), Ok(()));
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    rejoin(&mut group, "m1", t0 + ms(1));
    assert_eq!(group.try_complete(t0 + ms(1), &topics), None);
    // The member the rebalance waits for leaves: the rest have all joined.
    assert_eq!(group.leave("m2", t0 + ms(2)), Ok(()));
    let completed = group.try_complete(t0 + ms(2), &topics).unwrap();
    assert_eq!(
        (completed.generation, shares_of_t(&completed)),
        (2, BTreeMap::from([("m1", vec![0, 1, 2, 3])]))
    );
}

#[test]
fn last_member_leaving_empties_group_and_refuses_stale_commits() {
    let t0 = Instant::now();
    let topics = counts(&[("t", 2)]);
    let mut group = stable(&["m1"], &["t"], &topics, t0);
    let not_empty = Err(GroupError::GroupNotEmpty { members: 1 });
    assert_eq!(group.check_commit("", -1, false), not_empty);
    assert_eq!(
        group.check_commit("m1", 1, true),
        not_empty,
        "reset while members exist"
    );
    assert_eq!(group.check_commit("m1", 1, false), Ok(()));
    assert!(!group.is_empty());

    assert_eq!(group.leave("m1", t0 + ms(1)), Ok(()));
    assert_eq!(
        (group.state(), group.generation(), group.assignor()),
        (GroupState::Empty, 2, None)
    );
    assert!(group.is_empty());
    assert_eq!(
        group.check_commit("m1", 1, false),
        Err(GroupError::UnknownMember {
            member_id: "m1".into()
        })
    );
    assert_eq!(group.check_commit("", -1, false), Ok(()));
    assert_eq!(group.check_commit("", -1, true), Ok(()));
    assert_eq!(
        group.check_commit("", 2, false),
        Err(GroupError::UnknownMember {
            member_id: String::new()
        })
    );

    // A new generation: a commit carrying the first one is still refused.
    join_new(&mut group, "m2", &["t"], t0 + ms(2));
    assert_eq!(
        group.try_complete(t0 + ms(2), &topics).unwrap().generation,
        3
    );
    assert_eq!(
        group.check_commit("m2", 1, false),
        Err(GroupError::IllegalGeneration {
            generation: 1,
            current: 3
        })
    );
    // Allowed while rebalancing, with the current generation.
    group.start_rebalance(t0 + ms(3));
    assert_eq!(group.check_commit("m2", 3, false), Ok(()));
}

#[test]
fn unknown_member_is_refused_everywhere() {
    let t0 = Instant::now();
    let mut group = stable(&["m1"], &["t"], &counts(&[("t", 1)]), t0);
    let unknown = Err(GroupError::UnknownMember {
        member_id: "ghost".into(),
    });
    assert_eq!(
        group.join(request("ghost", &["t"]), t0, || unreachable!()),
        unknown
    );
    assert_eq!(
        group.heartbeat("ghost", 1, t0).map(|()| String::new()),
        unknown
    );
    assert_eq!(group.leave("ghost", t0).map(|()| String::new()), unknown);
    group.touch("ghost", t0 + ms(5));
    group.touch("m1", t0 + ms(5));
    assert_eq!(
        group.next_deadline(),
        Some(t0 + ms(5) + SESSION),
        "touch refreshes"
    );
    assert_eq!(
        (group.state(), group.member_count()),
        (GroupState::Stable, 1)
    );
}

#[test]
fn invalid_timeouts_are_refused() {
    let t0 = Instant::now();
    let mut group = Group::new("g".to_string());
    let cases = [
        (SESSION_TIMEOUT_MIN - ms(1), REBALANCE),
        (SESSION_TIMEOUT_MAX + Duration::from_nanos(1), REBALANCE),
        (SESSION, Duration::ZERO),
        (SESSION, REBALANCE_TIMEOUT_MAX + ms(1)),
    ];
    for (session_timeout, rebalance_timeout) in cases {
        let bad = JoinRequest {
            session_timeout,
            rebalance_timeout,
            ..request("", &["t"])
        };
        let refused = Err(GroupError::InvalidSessionTimeout {
            session_timeout,
            rebalance_timeout,
        });
        assert_eq!(group.join(bad, t0, || unreachable!()), refused);
    }
    assert_eq!(group.state(), GroupState::Empty);
    for (session_timeout, rebalance_timeout, id) in [
        (SESSION_TIMEOUT_MIN, ms(1), "m1"),
        (SESSION_TIMEOUT_MAX, REBALANCE_TIMEOUT_MAX, "m2"),
    ] {
        let edge = JoinRequest {
            session_timeout,
            rebalance_timeout,
            ..request("", &["t"])
        };
        assert_eq!(group.join(edge, t0, || id.to_string()), Ok(id.to_string()));
    }
    let message = GroupError::InvalidSessionTimeout {
        session_timeout: ms(5),
        rebalance_timeout: ms(6),
    };
    assert!(message.to_string().contains("5ms"), "{message}");
}

#[test]
fn assignor_must_match_unless_sole_member() {
    let t0 = Instant::now();
    let mut group = Group::new("g".to_string());
    join_new(&mut group, "m1", &["t"], t0);
    let round_robin = |id: &str| JoinRequest {
        assignor: Assignor::RoundRobin,
        ..request(id, &["t"])
    };
    let mismatch = Err(GroupError::InconsistentAssignor {
        group: Assignor::Range,
        asked: Assignor::RoundRobin,
    });
    assert_eq!(group.join(round_robin(""), t0, || unreachable!()), mismatch);
    assert_eq!(
        group.join(round_robin("m1"), t0, || unreachable!()),
        Ok("m1".into()),
        "sole member"
    );
    assert_eq!(group.assignor(), Some(Assignor::RoundRobin));
    assert_eq!(
        group.join(round_robin(""), t0, || "m2".into()),
        Ok("m2".into())
    );
    let mismatch = Err(GroupError::InconsistentAssignor {
        group: Assignor::RoundRobin,
        asked: Assignor::Range,
    });
    assert_eq!(
        group.join(request("m1", &["t"]), t0, || unreachable!()),
        mismatch
    );
    for id in ["m1", "m2"] {
        assert_eq!(group.leave(id, t0), Ok(()));
    }
    join_new(&mut group, "m3", &["t"], t0);
    assert_eq!(
        group.assignor(),
        Some(Assignor::Range),
        "forgotten when empty"
    );
}

#[test]
fn members_max_and_topics_max_are_enforced() {
    let t0 = Instant::now();
    let mut group = Group::new("g".to_string());
    for index in 0..MEMBERS_MAX {
        group
            .join(request("", &["t"]), t0, || format!("m{index}"))
            .unwrap();
    }
    let full = Err(GroupError::GroupFull {
        members_max: MEMBERS_MAX,
    });
    assert_eq!(group.join(request("", &["t"]), t0, || unreachable!()), full);
    assert_eq!(
        group.join(request("m7", &["t"]), t0, || unreachable!()),
        Ok("m7".into())
    );
    let completed = group.try_complete(t0, &counts(&[("t", 3)])).unwrap();
    assert_eq!(completed.joined.len(), MEMBERS_MAX);

    let many = JoinRequest {
        topics: vec!["t".to_string(); TOPICS_MAX + 1],
        ..request("m7", &[])
    };
    let refused = Err(GroupError::TooManyTopics {
        topics: TOPICS_MAX + 1,
        topics_max: TOPICS_MAX,
    });
    assert_eq!(group.join(many, t0, || unreachable!()), refused);
    let duplicates = JoinRequest {
        topics: vec!["t".to_string(); TOPICS_MAX],
        ..request("m7", &[])
    };
    assert_eq!(
        group.join(duplicates, t0, || unreachable!()),
        Ok("m7".into())
    );
    assert_eq!(
        group.members()[7].topics,
        ["t"],
        "{:?}",
        group.members()[7].member_id
    );
}

#[test]
fn extra_members_are_idle_but_in_the_generation() {
    let t0 = Instant::now();
    let topics = counts(&[("t", 2)]);
    let mut group = stable(&["m1", "m2", "m3", "m4"], &["t"], &topics, t0);
    assert_eq!(group.member_count(), 4);
    for view in group.members() {
        let expected = match view.member_id.as_str() {
            "m1" => vec![0],
            "m2" => vec![1],
            _ => vec![],
        };
        assert_eq!(
            view.assignment.get("t").cloned().unwrap_or_default(),
            expected,
            "{view:?}"
        );
        assert_eq!(group.heartbeat(&view.member_id, 1, t0), Ok(()));
    }
    assert_eq!(
        group.tick(t0 + SESSION - ms(1), &topics),
        nothing(),
        "idle members stay"
    );
}

#[test]
fn assignment_stale_when_subscribed_topics_change() {
    let t0 = Instant::now();
    let topics = counts(&[("t", 3), ("other", 1)]);
    let mut group = stable(&["m1"], &["t", "u"], &topics, t0);
    assert!(!group.assignment_stale(&topics));
    assert!(
        !group.assignment_stale(&counts(&[("t", 3), ("other", 9), ("v", 1)])),
        "unsubscribed"
    );
    assert!(
        group.assignment_stale(&counts(&[("t", 3), ("u", 2)])),
        "u created"
    );
    assert!(group.assignment_stale(&counts(&[("t", 4)])), "t resized");
    assert!(
        group.assignment_stale(&counts(&[("other", 1)])),
        "t deleted"
    );

    let changed = counts(&[("t", 4), ("u", 2)]);
    group.start_rebalance(t0 + ms(1));
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert!(
        !group.assignment_stale(&changed),
        "only a Stable group is stale"
    );
    rejoin(&mut group, "m1", t0 + ms(2));
    let completed = group.try_complete(t0 + ms(2), &changed).unwrap();
    assert_eq!(
        completed.joined[0]
            .assignment
            .values()
            .map(Vec::len)
            .sum::<usize>(),
        6
    );
    assert!(!group.assignment_stale(&changed));
    let mut empty = Group::new("e".to_string());
    assert!(!empty.assignment_stale(&changed));
    empty.start_rebalance(t0);
    assert_eq!(empty.state(), GroupState::Empty, "nothing to rebalance");
}
