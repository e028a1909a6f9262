//! Hosts: attaching to a relay chosen by placement, detaching, and the
//! route counts that go with them.

use super::AdminState;
use super::ChangeSet;
use super::RouteChange;
use super::RouteRecord;
use super::RowKey;
use super::State;
use super::choose_relay;
use super::refused;
use crate::ids::HostId;
use crate::ids::RelayId;
use crate::reply::Outcome;
use crate::reply::RefusalCode;

impl State {
    pub(super) fn attach_host(
        &mut self,
        host_id: &HostId,
        preferred_region: &str,
        changes: &mut ChangeSet,
    ) -> Outcome {
        let current = self.routes.get(host_id).cloned();
        if let Some(route) = &current {
            let relay = self
                .relays
                .get(&route.relay_id)
                .expect("every route names a known relay");
            if relay.live && relay.admin_state == AdminState::Active {
                if route.preferred_region != preferred_region {
                    let mut updated = route.clone();
                    updated.preferred_region = preferred_region.to_owned();
                    self.routes.insert(host_id.clone(), updated);
                    changes.touch(RowKey::Route(host_id.clone()));
                }
                return Outcome::Route(self.route(host_id).expect("route exists"));
            }
        }
        let exclude = current.as_ref().map(|route| &route.relay_id);
        let target = choose_relay(
            self.relays.values(),
            preferred_region,
            exclude,
            self.meta.clock_ms,
        )
        .map(|r| r.relay_id.clone());
        match (target, current) {
            (Some(target), _) => {
                self.place(host_id, &target, preferred_region.to_owned(), changes);
                Outcome::Route(self.route(host_id).expect("just placed"))
            }
            (None, Some(route)) => refused(
                RefusalCode::ResourceExhausted,
                format!(
                    "no active relay has room for host {host_id}; it keeps its route on {}",
                    route.relay_id
                ),
            ),
            (None, None) => refused(
                RefusalCode::ResourceExhausted,
                format!("no active relay has room for host {host_id}"),
            ),
        }
    }

    pub(super) fn detach_host(&mut self, host_id: &HostId, changes: &mut ChangeSet) -> Outcome {
        match self.routes.remove(host_id) {
            Some(route) => {
                changes.touch(RowKey::Route(host_id.clone()));
                changes.route_changed(RouteChange {
                    host_id: host_id.clone(),
                    previous: Some((route.relay_id.clone(), route.generation)),
                    current: None,
                });
                self.release(&route.relay_id, changes);
                Outcome::Detached {
                    host_id: host_id.clone(),
                    was_attached: true,
                    last_generation: route.generation,
                }
            }
            None => Outcome::Detached {
                host_id: host_id.clone(),
                was_attached: false,
                last_generation: 0,
            },
        }
    }

    /// Routes a host to `target` under the next generation.
    pub(super) fn place(
        &mut self,
        host_id: &HostId,
        target: &RelayId,
        preferred_region: String,
        changes: &mut ChangeSet,
    ) {
        self.meta.last_generation += 1;
        changes.touch(RowKey::Meta);
        let route = RouteRecord {
            relay_id: target.clone(),
            generation: self.meta.last_generation,
            since_ms: self.meta.clock_ms,
            preferred_region,
        };
        let relay = self
            .relays
            .get_mut(target)
            .expect("placement picks a known relay");
        assert!(
            relay.route_count < relay.capacity,
            "placement never exceeds capacity"
        );
        relay.route_count += 1;
        changes.touch(RowKey::Relay(target.clone()));
        changes.touch(RowKey::Route(host_id.clone()));
        let generation = route.generation;
        let previous = self.routes.insert(host_id.clone(), route);
        changes.route_changed(RouteChange {
            host_id: host_id.clone(),
            previous: previous
                .as_ref()
                .map(|p| (p.relay_id.clone(), p.generation)),
            current: Some((target.clone(), generation)),
        });
        if let Some(previous) = previous {
            self.release(&previous.relay_id, changes);
        }
    }

    /// One route left a relay; a draining relay that holds none is drained.
    pub(super) fn release(&mut self, relay_id: &RelayId, changes: &mut ChangeSet) {
        let relay = self
            .relays
            .get_mut(relay_id)
            .expect("every route names a known relay");
        relay.route_count = relay
            .route_count
            .checked_sub(1)
            .expect("a relay's route count matches its routes");
        changes.touch(RowKey::Relay(relay_id.clone()));
        if relay.route_count == 0 && relay.admin_state == AdminState::Draining {
            self.set_admin_state(relay_id, AdminState::Drained, changes);
        }
    }
}
