//! A relay's lifecycle: registration, liveness and leases, admin states,
//! drain batches and removal.

use super::AdminState;
use super::ChangeSet;
use super::RelayRecord;
use super::RowKey;
use super::State;
use super::choose_relay;
use super::refused;
use crate::command::Actor;
use crate::command::ActorKind;
use crate::command::RelayAdminTarget;
use crate::command::RelayRegistration;
use crate::ids::HostId;
use crate::ids::RelayId;
use crate::reply::Outcome;
use crate::reply::RefusalCode;

impl State {
    pub(super) fn register_relay(
        &mut self,
        registration: &RelayRegistration,
        actor: &Actor,
        changes: &mut ChangeSet,
    ) -> Outcome {
        let now = self.meta.clock_ms;
        let relay_id = registration.relay_id.clone();
        if self.removed_relays.contains_key(&relay_id) {
            if !matches!(actor.kind, ActorKind::Admin | ActorKind::Anonymous) {
                return refused(
                    RefusalCode::PermissionDenied,
                    format!("relay {relay_id} was removed; only an operator can register it again"),
                );
            }
            self.removed_relays.remove(&relay_id);
            changes.touch(RowKey::RemovedRelay(relay_id.clone()));
        }
        let record = match self.relays.get(&relay_id) {
            None => RelayRecord {
                relay_id: relay_id.clone(),
                endpoint: registration.endpoint.clone(),
                region: registration.region.clone(),
                labels: registration.labels.clone(),
                capacity: registration.capacity,
                incarnation: registration.incarnation,
                admin_state: AdminState::Active,
                live: true,
                route_count: 0,
                registered_at_ms: now,
                state_since_ms: now,
                warm_until_ms: now.saturating_add(RELAY_WARMUP_MS),
                held_out_until_ms: 0,
                recent_downs_ms: Vec::new(),
                drain: None,
            },
            Some(existing) => {
                if registration.incarnation < existing.incarnation {
                    return refused(
                        RefusalCode::FailedPrecondition,
                        format!(
                            "relay {relay_id} is registered with incarnation {}, newer than {}",
                            existing.incarnation, registration.incarnation
                        ),
                    );
                }
                let mut updated = existing.clone();
                updated.endpoint = registration.endpoint.clone();
                updated.region = registration.region.clone();
                updated.labels = registration.labels.clone();
                updated.capacity = registration.capacity;
                updated.incarnation = registration.incarnation;
                mark_live(&mut updated, now);
                updated
            }
        };
        let listed_differently = self
            .relays
            .get(&relay_id)
            .is_none_or(|old| old.endpoint != record.endpoint || old.region != record.region);
        self.relays.insert(relay_id.clone(), record.clone());
        changes.touch(RowKey::Relay(relay_id));
        if listed_differently {
            self.bump_epoch(changes);
        }
        Outcome::Relay(record)
    }

    pub(super) fn set_relay_state(
        &mut self,
        relay_id: &RelayId,
        target: RelayAdminTarget,
        changes: &mut ChangeSet,
    ) -> Outcome {
        let Some(relay) = self.relays.get(relay_id) else {
            return refused(RefusalCode::NotFound, format!("no relay {relay_id}"));
        };
        let next = match (target, relay.admin_state) {
            (RelayAdminTarget::Active, _) => AdminState::Active,
            (RelayAdminTarget::Draining, AdminState::Active | AdminState::Draining) => {
                if relay.route_count == 0 {
                    AdminState::Drained
                } else {
                    AdminState::Draining
                }
            }
            (RelayAdminTarget::Draining, AdminState::Drained) => AdminState::Drained,
            (RelayAdminTarget::Draining, AdminState::Maintenance) => {
                return refused(
                    RefusalCode::FailedPrecondition,
                    format!("relay {relay_id} is in maintenance"),
                );
            }
            (RelayAdminTarget::Maintenance, _) if relay.route_count > 0 => {
                return refused(
                    RefusalCode::FailedPrecondition,
                    format!(
                        "relay {relay_id} still holds {} routes; drain it first",
                        relay.route_count
                    ),
                );
            }
            (RelayAdminTarget::Maintenance, _) => AdminState::Maintenance,
        };
        self.set_admin_state(relay_id, next, changes);
        Outcome::Relay(self.relays[relay_id].clone())
    }

    pub(super) fn set_admin_state(
        &mut self,
        relay_id: &RelayId,
        next: AdminState,
        changes: &mut ChangeSet,
    ) {
        let now = self.meta.clock_ms;
        let relay = self
            .relays
            .get_mut(relay_id)
            .expect("caller checked the relay exists");
        if relay.admin_state != next {
            relay.admin_state = next;
            relay.state_since_ms = now;
            if next != AdminState::Draining {
                relay.drain = None;
            }
            changes.touch(RowKey::Relay(relay_id.clone()));
            self.bump_epoch(changes);
        }
    }

    pub(super) fn relay_up(
        &mut self,
        relay_id: &RelayId,
        incarnation: u64,
        changes: &mut ChangeSet,
    ) -> Outcome {
        let now = self.meta.clock_ms;
        let Some(relay) = self.relays.get_mut(relay_id) else {
            return refused(RefusalCode::NotFound, format!("no relay {relay_id}"));
        };
        if let Some(refusal) = stale_incarnation(relay, incarnation) {
            return refusal;
        }
        if !relay.live {
            mark_live(relay, now);
            changes.touch(RowKey::Relay(relay_id.clone()));
        }
        Outcome::Relay(relay.clone())
    }

    pub(super) fn relay_down(
        &mut self,
        relay_id: &RelayId,
        incarnation: u64,
        changes: &mut ChangeSet,
    ) -> Outcome {
        let Some(relay) = self.relays.get(relay_id) else {
            return refused(RefusalCode::NotFound, format!("no relay {relay_id}"));
        };
        if let Some(refusal) = stale_incarnation(relay, incarnation) {
            return refusal;
        }
        if relay.live {
            let now = self.meta.clock_ms;
            let relay = self.relays.get_mut(relay_id).expect("looked up above");
            relay.live = false;
            relay.state_since_ms = now;
            relay
                .recent_downs_ms
                .retain(|at| now.saturating_sub(*at) <= FLAP_WINDOW_MS);
            relay.recent_downs_ms.push(now);
            let excess = relay.recent_downs_ms.len().saturating_sub(FLAP_DOWNS_MAX);
            relay.recent_downs_ms.drain(..excess);
            changes.touch(RowKey::Relay(relay_id.clone()));
        }
        // The first batch moves now; the leader's scheduler proposes the
        // rest as `DrainBatch`es, so no apply moves more than a batch.
        let (hosts_moved, hosts_unplaced) =
            self.move_hosts_off(relay_id, RELAY_DOWN_BATCH_HOSTS, changes);
        Outcome::RelayMoved {
            relay: self.relays[relay_id].clone(),
            hosts_moved,
            hosts_unplaced,
        }
    }

    pub(super) fn drain_batch(
        &mut self,
        relay_id: &RelayId,
        hosts_max: u32,
        changes: &mut ChangeSet,
    ) -> Outcome {
        let Some(relay) = self.relays.get(relay_id) else {
            return refused(RefusalCode::NotFound, format!("no relay {relay_id}"));
        };
        if relay.admin_state != AdminState::Draining && relay.live {
            return refused(
                RefusalCode::FailedPrecondition,
                format!(
                    "relay {relay_id} is {}, neither draining nor down",
                    relay.state().as_str()
                ),
            );
        }
        let (hosts_moved, hosts_unplaced) = self.move_hosts_off(relay_id, hosts_max, changes);
        Outcome::RelayMoved {
            relay: self.relays[relay_id].clone(),
            hosts_moved,
            hosts_unplaced,
        }
    }

    /// Moves up to `hosts_max` hosts off a relay, in host-id order; the work
    /// is O(`hosts_max` × relays). Returns (moved, unplaced): once no relay
    /// has room for a host, none has for the rest, which all stay (unplaced).
    pub(super) fn move_hosts_off(
        &mut self,
        relay_id: &RelayId,
        hosts_max: u32,
        changes: &mut ChangeSet,
    ) -> (u32, u32) {
        let hosts: Vec<HostId> = self
            .routes
            .hosts_on(relay_id)
            .take(hosts_max as usize)
            .cloned()
            .collect();
        let mut moved = 0u32;
        for host_id in hosts {
            let region = self
                .routes
                .get(&host_id)
                .expect("indexed host has a route")
                .preferred_region
                .clone();
            let target = choose_relay(
                self.relays.values(),
                &region,
                Some(relay_id),
                self.meta.clock_ms,
            )
            .map(|r| r.relay_id.clone());
            let Some(target) = target else {
                return (moved, self.routes.count_on(relay_id) as u32);
            };
            self.place(&host_id, &target, region, changes);
            moved += 1;
        }
        (moved, 0)
    }

    pub(super) fn remove_relay(&mut self, relay_id: &RelayId, changes: &mut ChangeSet) -> Outcome {
        let Some(relay) = self.relays.get(relay_id) else {
            return refused(RefusalCode::NotFound, format!("no relay {relay_id}"));
        };
        if relay.route_count > 0 {
            return refused(
                RefusalCode::FailedPrecondition,
                format!(
                    "relay {relay_id} still holds {} routes; drain it first",
                    relay.route_count
                ),
            );
        }
        self.relays.remove(relay_id);
        changes.touch(RowKey::Relay(relay_id.clone()));
        self.removed_relays
            .insert(relay_id.clone(), self.meta.clock_ms);
        changes.touch(RowKey::RemovedRelay(relay_id.clone()));
        self.trim_removed_relays(changes);
        self.bump_epoch(changes);
        Outcome::RelayRemoved {
            relay_id: relay_id.clone(),
        }
    }
}

/// Tombstones of removed relays kept (each stops a removed relay from
/// registering itself again with a certificate that is still valid): the
/// newest by removal time. Past this the oldest goes; by then its
/// certificate should long have expired. Bounds the state and the work of
/// one removal (a scan of the tombstones, only when over).
pub const REMOVED_RELAYS_MAX: usize = 10_000;

impl State {
    fn trim_removed_relays(&mut self, changes: &mut ChangeSet) {
        while self.removed_relays.len() > REMOVED_RELAYS_MAX {
            let Some(oldest) = self
                .removed_relays
                .iter()
                .min_by_key(|(id, removed_at)| (**removed_at, (*id).clone()))
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            self.removed_relays.remove(&oldest);
            changes.touch(RowKey::RemovedRelay(oldest));
        }
    }
}

/// Hosts one `RelayDown` moves off the relay, and one re-placement batch
/// the leader proposes after it: bounds the work of one apply (each host
/// scans the relays for a place) while 10,000 hosts still move in ten
/// entries, back to back.
pub const RELAY_DOWN_BATCH_HOSTS: u32 = 1_000;

/// A relay that is new stays out of placement (unless nothing else has room)
/// for this long, so a fresh or restarted relay is not handed a stampede.
pub const RELAY_WARMUP_MS: u64 = 30_000;

/// Lease losses within this window count towards flapping.
pub const FLAP_WINDOW_MS: u64 = 10 * 60 * 1000;

/// This many lease losses within the window make a relay a flapper.
pub const FLAP_DOWNS_MAX: usize = 3;

/// A flapping relay is held out of placement this long after it comes back.
pub const FLAP_HOLD_MS: u64 = 5 * 60 * 1000;

/// A relay heard from again: live, and held out of placement if it has
/// lost its lease `FLAP_DOWNS_MAX` times within `FLAP_WINDOW_MS`.
pub(super) fn mark_live(relay: &mut RelayRecord, now: u64) {
    if relay.live {
        return;
    }
    relay.live = true;
    relay.state_since_ms = now;
    let recent = relay
        .recent_downs_ms
        .iter()
        .filter(|at| now.saturating_sub(**at) <= FLAP_WINDOW_MS)
        .count();
    if recent >= FLAP_DOWNS_MAX {
        relay.held_out_until_ms = now.saturating_add(FLAP_HOLD_MS);
    }
}

/// The refusal of a verdict about an incarnation the relay has left behind.
pub(super) fn stale_incarnation(relay: &RelayRecord, incarnation: u64) -> Option<Outcome> {
    (relay.incarnation != incarnation).then(|| {
        refused(
            RefusalCode::FailedPrecondition,
            format!(
                "relay {} is at incarnation {}, not {incarnation}",
                relay.relay_id, relay.incarnation
            ),
        )
    })
}
