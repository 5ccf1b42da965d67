//! Randomised test of the group membership state machine, in the manner of TigerBeetle's VOPR:
//! a seeded PRNG drives a few clients through joins, rejoins, heartbeats, commits, leaves, topic
//! changes and timer ticks with random time steps, against a small model of what the group must
//! look like. After every step the invariants are checked; after every completed rebalance, the
//! new generation's shares must cover every partition of the subscribed topics exactly once.
//!
//! Every seed in `0..SEEDS` runs; a failure prints its seed, and `RINGBUS_SEED=<seed>` replays
//! that one alone.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::super::assign::tests::{Rng, SeedReport, seeds};
use super::super::assign::{Assignment, Assignor, assign, validate};
use super::{Completed, Group, GroupError, GroupState, JoinRequest};

const SEEDS: u64 = 500;
const STEPS: usize = 400;
const CLIENTS_MAX: usize = 6;
const TOPICS: [&str; 3] = ["a", "b", "c"];

/// What the group must look like, kept from the answers it gave.
struct Model {
    /// Member id -> the generation it last completed (0: none yet).
    generations: BTreeMap<String, i32>,
    /// Members whose join has not been answered by a completion.
    waiting: BTreeSet<String>,
    /// The partition counts of the last completion.
    completed_with: BTreeMap<String, u32>,
    generation_max: i32,
}

struct Simulation {
    rng: Rng,
    group: Group,
    now: Instant,
    counts: BTreeMap<String, u32>,
    model: Model,
    ids_issued: u32,
}

#[test]
fn random_operations_hold_invariants() {
    for seed in seeds(SEEDS) {
        let _report = SeedReport(seed);
        let mut simulation = Simulation::new(seed);
        for step in 0..STEPS {
            simulation.step();
            simulation.check(step);
        }
    }
}

impl Simulation {
    fn new(seed: u64) -> Simulation {
        let model = Model {
            generations: BTreeMap::new(),
            waiting: BTreeSet::new(),
            completed_with: BTreeMap::new(),
            generation_max: 0,
        };
        let counts = BTreeMap::from([("a".to_string(), 3), ("b".to_string(), 5)]);
        let group = Group::new(format!("group-{seed}"));
        let now = Instant::now();
        Simulation {
            rng: Rng::new(seed),
            group,
            now,
            counts,
            model,
            ids_issued: 0,
        }
    }

    fn pick_member(&mut self) -> Option<String> {
        let ids: Vec<&String> = self.model.generations.keys().collect();
        (!ids.is_empty()).then(|| ids[self.rng.index(ids.len())].clone())
    }

    fn step(&mut self) {
        match self.rng.below(12) {
            0 | 1 if self.model.generations.len() < CLIENTS_MAX => self.join_new(),
            2 | 3 => self.rejoin(),
            4..=6 => self.heartbeat(),
            7 => self.leave(),
            8 | 9 => self.tick(),
            10 => self.change_topics(),
            _ => self.commit(),
        }
    }

    fn random_request(&mut self, member_id: String) -> JoinRequest {
        let mut topics: Vec<String> = TOPICS
            .iter()
            .filter(|_| self.rng.chance(50))
            .map(|t| t.to_string())
            .collect();
        if self.rng.chance(10) {
            topics.push("a".to_string());
        }
        let assignor = match self.group.assignor() {
            Some(assignor) if self.rng.chance(95) => assignor,
            _ if self.rng.chance(50) => Assignor::Range,
            _ => Assignor::RoundRobin,
        };
        let session_timeout = Duration::from_millis(1_000 + self.rng.below(7_000));
        let rebalance_timeout = Duration::from_millis(1 + self.rng.below(8_000));
        JoinRequest {
            member_id,
            client_id: "client".into(),
            topics,
            session_timeout,
            rebalance_timeout,
            assignor,
        }
    }

    fn expected_join(&self, request: &JoinRequest) -> Result<(), GroupError> {
        let sole_member = self.model.generations.len() == 1 && !request.member_id.is_empty();
        match self.group.assignor() {
            Some(group) if group != request.assignor && !sole_member => {
                Err(GroupError::InconsistentAssignor {
                    group,
                    asked: request.assignor,
                })
            }
            _ => Ok(()),
        }
    }

    fn join_new(&mut self) {
        let mut request = self.random_request(String::new());
        if self.rng.chance(5) {
            request.session_timeout = Duration::from_millis(self.rng.below(1_000));
        }
        let expected = if request.session_timeout < Duration::from_secs(1) {
            let (session_timeout, rebalance_timeout) =
                (request.session_timeout, request.rebalance_timeout);
            Err(GroupError::InvalidSessionTimeout {
                session_timeout,
                rebalance_timeout,
            })
        } else {
            self.expected_join(&request)
        };
        self.ids_issued += 1;
        let id = format!("member-{}", self.ids_issued);
        let answer = self.group.join(request, self.now, || id.clone());
        assert_eq!(answer.clone().map(|_| ()), expected);
        if let Ok(member_id) = answer {
            assert_eq!(member_id, id);
            self.model.generations.insert(id.clone(), 0);
            self.model.waiting.insert(id);
            self.try_complete();
        }
    }

    fn rejoin(&mut self) {
        let Some(id) = self.pick_member() else { return };
        let request = self.random_request(id.clone());
        let expected = self.expected_join(&request);
        let answer = self
            .group
            .join(request, self.now, || unreachable!("{id} is a member"));
        assert_eq!(answer.clone().map(|_| ()), expected);
        if answer.is_ok() {
            self.model.waiting.insert(id);
            self.try_complete();
        }
    }

    fn heartbeat(&mut self) {
        let Some(id) = self.pick_member() else { return };
        let mut generation = self.model.generations[&id];
        if self.rng.chance(10) {
            generation = self.rng.below(4) as i32;
        }
        let current = self.group.generation();
        let expected = match self.group.state() {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            _ if generation == current => Ok(()),
            _ => Err(GroupError::IllegalGeneration {
                generation,
                current,
            }),
        };
        assert_eq!(
            self.group.heartbeat(&id, generation, self.now),
            expected,
            "{id}"
        );
    }

    fn leave(&mut self) {
        let Some(id) = self.pick_member() else { return };
        assert_eq!(self.group.leave(&id, self.now), Ok(()));
        self.forget(&id);
        assert_eq!(
            self.group.leave(&id, self.now),
            Err(GroupError::UnknownMember { member_id: id })
        );
        self.try_complete();
    }

    fn tick(&mut self) {
        self.now += Duration::from_millis(self.rng.below(3_000));
        let ticked = self.group.tick(self.now, &self.counts);
        let removed = match &ticked.completed {
            Some(completed) => {
                assert!(ticked.expired.is_empty(), "{ticked:?}");
                &completed.removed
            }
            None => &ticked.expired,
        };
        for id in removed.clone() {
            assert!(
                !self.model.waiting.contains(&id),
                "{id} removed while waiting in a join"
            );
            self.forget(&id);
        }
        if let Some(completed) = ticked.completed {
            self.completed(completed);
        }
    }

    fn change_topics(&mut self) {
        let topic = TOPICS[self.rng.index(TOPICS.len())].to_string();
        if self.rng.chance(25) {
            self.counts.remove(&topic);
        } else {
            self.counts.insert(topic, self.rng.below(7) as u32);
        }
        let subscribed: BTreeSet<String> = self
            .group
            .members()
            .into_iter()
            .flat_map(|view| view.topics)
            .collect();
        let restrict = |counts: &BTreeMap<String, u32>| -> Vec<(String, u32)> {
            counts
                .iter()
                .filter(|(topic, _)| subscribed.contains(*topic))
                .map(|(t, c)| (t.clone(), *c))
                .collect()
        };
        let differs = restrict(&self.counts) != restrict(&self.model.completed_with);
        let expected = self.group.state() == GroupState::Stable && differs;
        assert_eq!(
            self.group.assignment_stale(&self.counts),
            expected,
            "{:?}",
            self.counts
        );
        if expected {
            self.group.start_rebalance(self.now);
            assert_eq!(self.group.state(), GroupState::PreparingRebalance);
        }
    }

    fn commit(&mut self) {
        let not_empty = |members: usize| Err(GroupError::GroupNotEmpty { members });
        let members = self.model.generations.len();
        let expected_outsider = if members == 0 {
            Ok(())
        } else {
            not_empty(members)
        };
        assert_eq!(self.group.check_commit("", -1, false), expected_outsider);
        assert_eq!(self.group.check_commit("", -1, true), expected_outsider);
        let Some(id) = self.pick_member() else { return };
        let generation = self.model.generations[&id];
        let current = self.group.generation();
        let expected = if generation == current {
            Ok(())
        } else {
            Err(GroupError::IllegalGeneration {
                generation,
                current,
            })
        };
        assert_eq!(
            self.group.check_commit(&id, generation, false),
            expected,
            "{id}"
        );
        self.group.touch(&id, self.now);
    }

    fn forget(&mut self, id: &str) {
        assert!(
            self.model.generations.remove(id).is_some(),
            "{id} removed twice or never a member"
        );
        self.model.waiting.remove(id);
    }

    fn try_complete(&mut self) {
        if let Some(completed) = self.group.try_complete(self.now, &self.counts) {
            assert!(completed.removed.is_empty(), "{completed:?}");
            self.completed(completed);
        }
    }

    /// A completion: the next generation, made of exactly the members that waited in a join,
    /// sharing out every partition of their subscriptions exactly once.
    fn completed(&mut self, completed: Completed) {
        let generation = completed.generation;
        assert!(
            generation > self.model.generation_max,
            "{generation} after {}",
            self.model.generation_max
        );
        assert_eq!(generation, self.group.generation());
        self.model.generation_max = generation;
        let joined: BTreeSet<String> = completed
            .joined
            .iter()
            .map(|joined| joined.member_id.clone())
            .collect();
        assert_eq!(
            joined, self.model.waiting,
            "generation {generation}: joined vs waiting"
        );
        let subscriptions: Vec<(String, Vec<String>)> = self
            .group
            .members()
            .into_iter()
            .map(|view| (view.member_id, view.topics))
            .collect();
        let shares: BTreeMap<String, Assignment> = completed
            .joined
            .iter()
            .map(|joined| (joined.member_id.clone(), joined.assignment.clone()))
            .collect();
        assert_eq!(
            validate(&subscriptions, &self.counts, &shares),
            Ok(()),
            "generation {generation}"
        );
        for joined in &completed.joined {
            assert_eq!(joined.generation, generation);
            assert_eq!(joined.member_count as usize, completed.joined.len());
            self.model
                .generations
                .insert(joined.member_id.clone(), generation);
        }
        self.model.waiting.clear();
        self.model.completed_with = self.counts.clone();
    }

    fn check(&self, step: usize) {
        let group = &self.group;
        let views = group.members();
        let ids: Vec<&String> = views.iter().map(|view| &view.member_id).collect();
        assert_eq!(
            ids,
            self.model.generations.keys().collect::<Vec<_>>(),
            "step {step}: members"
        );
        assert!(
            group.generation() >= self.model.generation_max,
            "step {step}: generation went back"
        );
        assert_eq!(
            group.is_empty(),
            group.state() == GroupState::Empty,
            "step {step}"
        );
        if group.state() == GroupState::Stable {
            assert!(
                self.model.waiting.is_empty(),
                "step {step}: Stable with {:?} waiting",
                self.model.waiting
            );
            // The union of the members' shares is what `assign` gives for this generation.
            let subscriptions: Vec<(String, Vec<String>)> = views
                .iter()
                .map(|view| (view.member_id.clone(), view.topics.clone()))
                .collect();
            let expected = assign(
                group.assignor().unwrap(),
                &subscriptions,
                &self.model.completed_with,
            );
            let actual: BTreeMap<String, Assignment> = views
                .iter()
                .map(|view| (view.member_id.clone(), view.assignment.clone()))
                .collect();
            assert_eq!(actual, expected, "step {step}");
        }
        // `next_deadline` is exact: just before it a tick does nothing, at it a tick does work.
        match group.next_deadline() {
            None => assert!(group.is_empty(), "step {step}: members but no deadline"),
            Some(deadline) => {
                assert!(deadline > self.now, "step {step}: deadline already past");
                let before = group
                    .clone()
                    .tick(deadline - Duration::from_nanos(1), &self.counts);
                assert!(
                    before.expired.is_empty() && before.completed.is_none(),
                    "step {step}: {before:?}"
                );
                let at = group.clone().tick(deadline, &self.counts);
                assert!(
                    !at.expired.is_empty() || at.completed.is_some(),
                    "step {step}: idle at deadline"
                );
            }
        }
    }
}
