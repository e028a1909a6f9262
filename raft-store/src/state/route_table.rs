//! The route table: `host_id -> route`, with the reverse index by relay.
//!
//! Everything that reads or changes routes goes through this type and is
//! keyed by host id, so the table can later be split by host-id hash across
//! several Raft groups without touching its callers.

use imbl::OrdMap;
use imbl::OrdSet;

use crate::ids::HostId;
use crate::ids::RelayId;
use crate::state::records::RouteRecord;

/// All routes. Persistent maps: a clone is O(1), so snapshots and readers
/// take a copy without stopping apply.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: OrdMap<HostId, RouteRecord>,
    by_relay: OrdMap<RelayId, OrdSet<HostId>>,
}

impl RouteTable {
    /// A host's route.
    pub fn get(&self, host_id: &HostId) -> Option<&RouteRecord> {
        self.routes.get(host_id)
    }

    /// How many hosts have a route.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether no host has a route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The hosts routed to a relay, in host-id order.
    pub fn hosts_on(&self, relay_id: &RelayId) -> impl Iterator<Item = &HostId> {
        self.by_relay
            .get(relay_id)
            .into_iter()
            .flat_map(|hosts| hosts.iter())
    }

    /// How many hosts are routed to a relay.
    pub fn count_on(&self, relay_id: &RelayId) -> usize {
        self.by_relay.get(relay_id).map_or(0, |hosts| hosts.len())
    }

    /// Every route, in host-id order.
    pub fn iter(&self) -> impl Iterator<Item = (&HostId, &RouteRecord)> {
        self.routes.iter()
    }

    /// Sets a host's route and returns the one it replaced.
    pub(crate) fn insert(&mut self, host_id: HostId, route: RouteRecord) -> Option<RouteRecord> {
        let relay_id = route.relay_id.clone();
        let previous = self.routes.insert(host_id.clone(), route);
        if let Some(previous) = &previous {
            self.unindex(&previous.relay_id, &host_id);
        }
        self.by_relay.entry(relay_id).or_default().insert(host_id);
        previous
    }

    /// Removes a host's route.
    pub(crate) fn remove(&mut self, host_id: &HostId) -> Option<RouteRecord> {
        let previous = self.routes.remove(host_id)?;
        self.unindex(&previous.relay_id, host_id);
        Some(previous)
    }

    fn unindex(&mut self, relay_id: &RelayId, host_id: &HostId) {
        let now_empty = match self.by_relay.get_mut(relay_id) {
            Some(hosts) => {
                hosts.remove(host_id);
                hosts.is_empty()
            }
            None => false,
        };
        if now_empty {
            self.by_relay.remove(relay_id);
        }
    }
}
