//! The per-IP connection limit (`--connections-per-ip-max`, Kafka's `max.connections.per.ip`):
//! how many client connections one IP address holds, counted across every shard and both
//! client listeners (ringbus and Kafka; `/metrics` is not a client listener and is not counted).
//!
//! Why one count shared by the shards rather than the limit split per shard: the kernel spreads
//! a host's connections over the shards by a hash of the 4-tuple (SO_REUSEPORT), so with N/k
//! per shard a host could be refused at fewer than N (its connections need not spread evenly)
//! and the limit would change meaning with the core count. The count is an
//! `Arc<Mutex<HashMap>>` touched twice in a connection's life, at accept and at close, never
//! per request: a shard's hot path does not see it, and with no limit configured it does not
//! exist at all.
//!
//! Invariant: the map holds an entry only for an address with at least one open connection,
//! and that entry equals the number of [`PerIpSlot`]s alive for it; so the map is bounded by
//! the connections open. A refusal is logged at most once per second across the whole broker,
//! with the number refused since the last line, so a host hammering the port cannot flood the
//! log; every refusal is counted in the refusing shard's metrics.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Refusals are logged at most this often.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The per-IP limit and count, shared by every shard's accept loops.
#[derive(Debug)]
pub struct PerIpLimit {
    connections_per_ip_max: NonZeroU32,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    open: HashMap<IpAddr, u32>,
    log: RateLimitedLog,
}

/// A connection slot of one address: the count goes down when it is dropped (the connection
/// ended). No I/O: only the shared count is touched.
#[derive(Debug)]
pub struct PerIpSlot {
    limit: Arc<PerIpLimit>,
    ip: IpAddr,
}

/// A connection the limit refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{ip} already has {open} connections, the most allowed per address")]
pub struct PerIpRefused {
    /// The address.
    pub ip: IpAddr,
    /// Its connections open now.
    pub open: u32,
}

impl PerIpLimit {
    /// A limit of `connections_per_ip_max` connections per address.
    pub fn new(connections_per_ip_max: NonZeroU32) -> Arc<PerIpLimit> {
        Arc::new(PerIpLimit {
            connections_per_ip_max,
            state: Mutex::new(State {
                open: HashMap::new(),
                log: RateLimitedLog::new(REFUSAL_LOG_INTERVAL),
            }),
        })
    }

    /// Takes a slot for a connection from `ip`, or refuses it (the caller closes it). A
    /// refusal is logged here, at most once per [`REFUSAL_LOG_INTERVAL`].
    pub fn admit(self: &Arc<PerIpLimit>, ip: IpAddr) -> Result<PerIpSlot, PerIpRefused> {
        let mut state = self.lock();
        let open = state.open.get(&ip).copied().unwrap_or(0);
        if open >= self.connections_per_ip_max.get() {
            if let Some(refused) = state.log.should_log(Instant::now()) {
                tracing::warn!(%ip, open, limit = self.connections_per_ip_max, refused,
                    "per-IP connection limit reached: closing (refused since the last line)");
            }
            return Err(PerIpRefused { ip, open });
        }
        state.open.insert(ip, open + 1);
        Ok(PerIpSlot {
            limit: self.clone(),
            ip,
        })
    }

    /// Connections `ip` holds now.
    pub fn open(&self, ip: IpAddr) -> u32 {
        self.lock().open.get(&ip).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding it ends the process (fail-stop), so poison is never seen in
        // a running broker; tests may still see it and the count stays consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for PerIpSlot {
    fn drop(&mut self) {
        let mut state = self.limit.lock();
        let open = state
            .open
            .get_mut(&self.ip)
            .expect("an open slot's address is counted");
        assert!(*open > 0, "{} has a slot but a count of 0", self.ip);
        *open -= 1;
        if *open == 0 {
            state.open.remove(&self.ip);
        }
    }
}

/// Lets one line through per interval and counts what it held back.
#[derive(Debug)]
struct RateLimitedLog {
    interval: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl RateLimitedLog {
    fn new(interval: Duration) -> RateLimitedLog {
        RateLimitedLog {
            interval,
            last: None,
            held_back: 0,
        }
    }

    /// One event at `now`: `Some(events since the last line, this one included)` when a line
    /// may be written, `None` when it is held back.
    fn should_log(&mut self, now: Instant) -> Option<u64> {
        self.held_back += 1;
        let due = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if !due {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::num::NonZeroU32;
    use std::time::{Duration, Instant};

    use super::{PerIpLimit, PerIpRefused, RateLimitedLog};

    const HOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const OTHER: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

    #[test]
    fn an_address_gets_its_limit_and_a_slot_back_when_one_closes() {
        let limit = PerIpLimit::new(NonZeroU32::new(2).expect("not zero"));
        let first = limit.admit(HOST).expect("first");
        let _second = limit.admit(HOST).expect("second");
        assert_eq!(
            limit.admit(HOST).expect_err("third"),
            PerIpRefused { ip: HOST, open: 2 }
        );
        // Another address has its own count.
        let other = limit.admit(OTHER).expect("another address");
        assert_eq!(limit.open(OTHER), 1);
        drop(first);
        assert_eq!(limit.open(HOST), 1);
        let _third = limit.admit(HOST).expect("a slot came back");
        drop(other);
        assert_eq!(limit.open(OTHER), 0);
        assert!(
            !limit.lock().open.contains_key(&OTHER),
            "an address with no connection keeps no entry"
        );
    }

    #[test]
    fn refusals_are_logged_at_most_once_per_interval_with_what_was_held_back() {
        let mut log = RateLimitedLog::new(Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(log.should_log(start), Some(1));
        for millis in [1, 200, 999] {
            assert_eq!(log.should_log(start + Duration::from_millis(millis)), None);
        }
        assert_eq!(log.should_log(start + Duration::from_secs(1)), Some(4));
        assert_eq!(log.should_log(start + Duration::from_millis(1_500)), None);
        assert_eq!(log.should_log(start + Duration::from_secs(3)), Some(2));
    }
}
