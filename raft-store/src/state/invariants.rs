//! The state's invariants, checked after loading and in tests.

use super::AdminState;
use super::State;

impl State {
    /// Checks every invariant of the state; O(size), for loading and tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut generations = std::collections::BTreeSet::new();
        for (host_id, route) in self.routes.iter() {
            let Some(relay) = self.relays.get(&route.relay_id) else {
                return Err(format!(
                    "host {host_id} routes to unknown relay {}",
                    route.relay_id
                ));
            };
            if route.generation == 0 || route.generation > self.meta.last_generation {
                return Err(format!(
                    "host {host_id} has generation {} outside 1..={}",
                    route.generation, self.meta.last_generation
                ));
            }
            if !generations.insert(route.generation) {
                return Err(format!("generation {} is used twice", route.generation));
            }
            if matches!(
                relay.admin_state,
                AdminState::Drained | AdminState::Maintenance
            ) {
                return Err(format!(
                    "host {host_id} routes to {} relay {}",
                    relay.state().as_str(),
                    relay.relay_id
                ));
            }
        }
        for relay in self.relays.values() {
            let held = self.routes.count_on(&relay.relay_id);
            if held != relay.route_count as usize {
                return Err(format!(
                    "relay {} counts {} routes but holds {held}",
                    relay.relay_id, relay.route_count
                ));
            }
        }
        for (id, record) in self.requests.iter() {
            if record.applied_at_ms > self.meta.clock_ms {
                return Err(format!("request {id} applied after the state clock"));
            }
        }
        Ok(())
    }
}
