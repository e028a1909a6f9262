//! Relay leases, held in memory by the leader.
//!
//! Heartbeats never go through the Raft log: the leader notes the time of
//! each relay's last heartbeat here and proposes only state changes (a relay
//! down when its lease runs out, up when it heartbeats again). A new leader
//! gives every relay one fresh lease before it judges any.

use parking_lot::Mutex;
use std::collections::HashMap;
use tokio::time::Instant;

use switchboard_raft_store::ids::RelayId;

/// Relays tracked at once: more than any cluster's relays, a bound against a
/// flood of made-up relay ids (heartbeats for unknown relays are refused).
pub const LEASES_MAX: usize = 100_000;

/// The last heartbeat of one relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub incarnation: u64,
    pub last_heartbeat: Instant,
    pub active_sessions: u32,
}

/// Leases of every relay, by id.
#[derive(Default)]
pub struct Leases {
    leases: Mutex<HashMap<RelayId, Lease>>,
}

impl Leases {
    /// Records a heartbeat received at `now`.
    pub fn record(&self, relay_id: RelayId, incarnation: u64, active_sessions: u32, now: Instant) {
        let mut leases = self.leases.lock();
        if leases.len() >= LEASES_MAX && !leases.contains_key(&relay_id) {
            return;
        }
        let lease = leases.entry(relay_id).or_insert(Lease {
            incarnation,
            last_heartbeat: now,
            active_sessions,
        });
        if incarnation >= lease.incarnation {
            *lease = Lease {
                incarnation,
                last_heartbeat: now.max(lease.last_heartbeat),
                active_sessions,
            };
        }
    }

    /// A new leader's grace: every given relay's lease starts now.
    pub fn grant_fresh(&self, relays: impl IntoIterator<Item = (RelayId, u64)>, now: Instant) {
        let mut leases = self.leases.lock();
        leases.clear();
        for (relay_id, incarnation) in relays {
            leases.insert(
                relay_id,
                Lease {
                    incarnation,
                    last_heartbeat: now,
                    active_sessions: 0,
                },
            );
        }
    }

    /// One relay's lease.
    pub fn get(&self, relay_id: &RelayId) -> Option<Lease> {
        self.leases.lock().get(relay_id).copied()
    }

    /// Forgets relays that are gone from the state.
    pub fn retain(&self, keep: impl Fn(&RelayId) -> bool) {
        self.leases.lock().retain(|id, _| keep(id));
    }

    /// How many relays hold a lease record.
    pub fn len(&self) -> usize {
        self.leases.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_stale_incarnation_does_not_renew_a_newer_lease() {
        let leases = Leases::default();
        let relay = RelayId::new("r").unwrap();
        let start = Instant::now();
        leases.record(relay.clone(), 2, 5, start);
        leases.record(relay.clone(), 1, 9, start + Duration::from_secs(1));
        assert_eq!(leases.get(&relay).unwrap().last_heartbeat, start);
        leases.grant_fresh([(relay.clone(), 2)], start + Duration::from_secs(2));
        assert_eq!(
            leases.get(&relay).unwrap().last_heartbeat,
            start + Duration::from_secs(2)
        );
    }
}
