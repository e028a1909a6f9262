//! Where a host goes: a pure function of the relays in the state.
//!
//! Rules, in order: only live, active relays with room that are not held
//! out for flapping; a relay in the preferred region before any other; a
//! warmed-up relay before one still warming up; the fewest routes relative
//! to capacity; then the smallest relay id, so every site picks the same relay.

use std::cmp::Ordering;

use crate::ids::RelayId;
use crate::state::records::RelayRecord;

/// Picks the relay for one host at state time `now_ms`, or `None` when no
/// relay has room.
pub fn choose_relay<'a>(
    relays: impl IntoIterator<Item = &'a RelayRecord>,
    preferred_region: &str,
    exclude: Option<&RelayId>,
    now_ms: u64,
) -> Option<&'a RelayRecord> {
    relays
        .into_iter()
        .filter(|relay| relay.has_room(now_ms) && Some(&relay.relay_id) != exclude)
        .min_by(|a, b| compare_candidates(a, b, preferred_region, now_ms))
}

/// Hosts the relays other than `exclude` could take now.
pub fn room_elsewhere<'a>(
    relays: impl IntoIterator<Item = &'a RelayRecord>,
    exclude: &RelayId,
    now_ms: u64,
) -> u64 {
    relays
        .into_iter()
        .filter(|relay| relay.has_room(now_ms) && &relay.relay_id != exclude)
        .map(|relay| u64::from(relay.capacity.saturating_sub(relay.route_count)))
        .sum()
}

/// Orders two candidates; the smaller one is placed first.
fn compare_candidates(
    a: &RelayRecord,
    b: &RelayRecord,
    preferred_region: &str,
    now_ms: u64,
) -> Ordering {
    let outside =
        |relay: &RelayRecord| !preferred_region.is_empty() && relay.region != preferred_region;
    let cold = |relay: &RelayRecord| !relay.is_warm(now_ms);
    outside(a)
        .cmp(&outside(b))
        .then_with(|| cold(a).cmp(&cold(b)))
        .then_with(|| compare_load(a, b))
        .then_with(|| a.relay_id.cmp(&b.relay_id))
}

/// Compares `route_count / capacity` exactly, without floating point.
fn compare_load(a: &RelayRecord, b: &RelayRecord) -> Ordering {
    let left = u64::from(a.route_count) * u64::from(b.capacity);
    let right = u64::from(b.route_count) * u64::from(a.capacity);
    left.cmp(&right)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::records::AdminState;

    fn relay(id: &str, region: &str, routes: u32, capacity: u32) -> RelayRecord {
        RelayRecord {
            relay_id: RelayId::new(id).unwrap(),
            endpoint: format!("{id}.example:443"),
            region: region.into(),
            labels: Default::default(),
            capacity,
            incarnation: 1,
            admin_state: AdminState::Active,
            live: true,
            route_count: routes,
            registered_at_ms: 0,
            state_since_ms: 0,
            warm_until_ms: 0,
            held_out_until_ms: 0,
            recent_downs_ms: Vec::new(),
            drain: None,
        }
    }

    const NOW: u64 = 1_000_000;

    fn chosen(relays: &[RelayRecord], region: &str) -> Option<String> {
        choose_relay(relays, region, None, NOW).map(|r| r.relay_id.to_string())
    }

    /// Golden cases: each line is one rule of placement.
    #[test]
    fn placement_golden_cases() {
        // Fewest routes relative to capacity wins: 5/100 beats 1/10.
        let relays = [relay("a", "eu", 1, 10), relay("b", "eu", 5, 100)];
        assert_eq!(chosen(&relays, "").as_deref(), Some("b"));

        // The preferred region beats a lighter relay elsewhere.
        let relays = [relay("a", "us", 0, 10), relay("b", "eu", 9, 10)];
        assert_eq!(chosen(&relays, "eu").as_deref(), Some("b"));

        // Outside the preferred region only when it is full.
        let relays = [relay("a", "us", 0, 10), relay("b", "eu", 10, 10)];
        assert_eq!(chosen(&relays, "eu").as_deref(), Some("a"));

        // Ties go to the smallest id.
        let relays = [
            relay("c", "", 1, 10),
            relay("b", "", 1, 10),
            relay("d", "", 1, 10),
        ];
        assert_eq!(chosen(&relays, "").as_deref(), Some("b"));

        // Full, down, draining and maintenance relays are never chosen.
        let mut down = relay("a", "", 0, 10);
        down.live = false;
        let mut draining = relay("b", "", 0, 10);
        draining.admin_state = AdminState::Draining;
        let mut maintenance = relay("c", "", 0, 10);
        maintenance.admin_state = AdminState::Maintenance;
        let full = relay("d", "", 10, 10);
        assert_eq!(chosen(&[down, draining, maintenance, full], ""), None);

        // The excluded relay is skipped.
        let relays = [relay("a", "", 0, 10), relay("b", "", 5, 10)];
        let excluded = RelayId::new("a").unwrap();
        assert_eq!(
            choose_relay(&relays, "", Some(&excluded), NOW).map(|r| r.relay_id.as_str()),
            Some("b")
        );

        // A relay still warming up takes hosts only when no warm one has room.
        let mut cold = relay("a", "", 0, 10);
        cold.warm_until_ms = NOW + 1;
        let relays = [cold.clone(), relay("b", "", 9, 10)];
        assert_eq!(chosen(&relays, "").as_deref(), Some("b"));
        let relays = [cold, relay("b", "", 10, 10)];
        assert_eq!(chosen(&relays, "").as_deref(), Some("a"));

        // A relay held out for flapping takes none, even when it is the only one.
        let mut flapping = relay("a", "", 0, 10);
        flapping.held_out_until_ms = NOW + 1;
        assert_eq!(chosen(&[flapping], ""), None);
    }
}
