//! Recent events for the operator's page: leader changes, relays going
//! down and coming back, drains, maintenance windows starting and ending,
//! sites drained and back. Judged by comparing what the page watches
//! between two looks (`changes` is pure and tested below), kept in a
//! bounded ring, newest first.

use std::collections::BTreeMap;
use std::collections::VecDeque;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::site::Site;
use serde::Deserialize;
use serde::Serialize;
use switchboard_raft_store::state::State;

/// Events kept: the page shows the last hour or so of a busy day.
pub const EVENTS_KEPT_MAX: usize = 64;
/// Changes written out one by one per look; past it they are counted, so a
/// storm of 10,000 relays going down is one line, not the whole ring.
pub const EVENTS_PER_LOOK_MAX: usize = 8;
/// How often a site looks.
pub const EVENTS_LOOK_INTERVAL_MS: u64 = 500;

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When this site noticed it.
    pub at_unix_ms: u64,
    pub text: String,
}

/// What the events are judged from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Watched {
    pub leader: Option<u64>,
    /// Relay id to state name.
    pub relays: BTreeMap<String, &'static str>,
    /// Window id to (target, status name).
    pub windows: BTreeMap<u64, (String, &'static str)>,
    /// Site id to whether it is drained.
    pub sites_drained: BTreeMap<u64, bool>,
}

impl Watched {
    /// What `state` and the `leader` a site knows show now.
    pub fn of(state: &State, leader: Option<u64>) -> Self {
        Watched {
            leader,
            relays: state
                .relays()
                .map(|r| (r.relay_id.to_string(), r.state().as_str()))
                .collect(),
            windows: state
                .windows()
                .map(|w| (w.id, (w.target.to_string(), w.status.as_str())))
                .collect(),
            sites_drained: state.sites().map(|(id, s)| (*id, s.draining)).collect(),
        }
    }
}

/// The changes from `before` to `after`, as lines, in a fixed order.
pub fn changes(before: &Watched, after: &Watched) -> Vec<String> {
    let mut lines = Vec::new();
    match (before.leader, after.leader) {
        (a, b) if a == b => {}
        (None, Some(b)) => lines.push(format!("site {b} became leader")),
        (Some(a), Some(b)) => lines.push(format!("leadership moved from site {a} to site {b}")),
        (Some(a), None) => lines.push(format!("site {a} no longer leads: election")),
        (None, None) => {}
    }
    for (id, state) in &after.relays {
        match before.relays.get(id) {
            None => lines.push(format!("relay {id} registered ({state})")),
            Some(was) if was != state => lines.push(format!("relay {id}: {was} -> {state}")),
            Some(_) => {}
        }
    }
    for id in before
        .relays
        .keys()
        .filter(|id| !after.relays.contains_key(*id))
    {
        lines.push(format!("relay {id} removed"));
    }
    for (id, (target, status)) in &after.windows {
        let was = before.windows.get(id).map(|(_, s)| *s);
        if was != Some(*status) {
            lines.push(format!("maintenance window {id} ({target}): {status}"));
        }
    }
    for (id, drained) in &after.sites_drained {
        let was = before.sites_drained.get(id).copied().unwrap_or(false);
        match (was, *drained) {
            (false, true) => lines.push(format!("site {id} drained")),
            (true, false) => lines.push(format!("site {id} back in service")),
            _ => {}
        }
    }
    lines
}

/// The ring, and what the last look saw.
#[derive(Default)]
pub struct EventRing {
    inner: Mutex<Ring>,
}

#[derive(Default)]
struct Ring {
    events: VecDeque<Event>,
    last: Option<Watched>,
}

impl EventRing {
    /// Records what changed since the last look, and answers it; the first
    /// look is the baseline and records nothing.
    pub fn observe(&self, now_unix_ms: u64, watched: Watched) -> Vec<String> {
        let mut ring = self.inner.lock();
        let lines = match &ring.last {
            Some(last) => changes(last, &watched),
            None => Vec::new(),
        };
        let more = lines.len().saturating_sub(EVENTS_PER_LOOK_MAX);
        let mut texts: Vec<String> = lines.into_iter().take(EVENTS_PER_LOOK_MAX).collect();
        if more > 0 {
            texts.push(format!("and {more} more changes"));
        }
        for text in &texts {
            ring.events.push_front(Event {
                at_unix_ms: now_unix_ms,
                text: text.clone(),
            });
        }
        ring.events.truncate(EVENTS_KEPT_MAX);
        ring.last = Some(watched);
        texts
    }

    /// The events kept, newest first.
    pub fn recent(&self) -> Vec<Event> {
        self.inner.lock().events.iter().cloned().collect()
    }
}

/// Looks at `site` every `EVENTS_LOOK_INTERVAL_MS` until `stop`.
pub async fn run_event_watcher(site: Arc<Site>, mut stop: watch::Receiver<bool>) {
    let mut looks = tokio::time::interval(Duration::from_millis(EVENTS_LOOK_INTERVAL_MS));
    looks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = looks.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        let leader = site.leader().map(|(id, _)| id);
        let watched = Watched::of(&site.reader.load().state, leader);
        // Each site logs what it noticed once: leader changes, relays,
        // windows, drained sites.
        for event in site.events.observe(site.clock.unix_ms(), watched) {
            tracing::info!(site = site.id, %event, "event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(leader: Option<u64>, relays: &[(&str, &'static str)]) -> Watched {
        Watched {
            leader,
            relays: relays
                .iter()
                .map(|(id, s)| ((*id).to_owned(), *s))
                .collect(),
            ..Watched::default()
        }
    }

    #[test]
    fn leader_relay_window_and_site_changes_read_as_lines() {
        let before = Watched {
            windows: [(1, ("relay:r2".to_owned(), "scheduled"))].into(),
            sites_drained: [(1, false), (2, true)].into(),
            ..watched(
                Some(1),
                &[("r1", "active"), ("r2", "active"), ("r3", "active")],
            )
        };
        let after = Watched {
            windows: [(1, ("relay:r2".to_owned(), "active"))].into(),
            sites_drained: [(1, true), (2, false)].into(),
            ..watched(
                Some(2),
                &[("r1", "down"), ("r2", "maintenance"), ("r4", "active")],
            )
        };
        assert_eq!(
            changes(&before, &after),
            [
                "leadership moved from site 1 to site 2",
                "relay r1: active -> down",
                "relay r2: active -> maintenance",
                "relay r4 registered (active)",
                "relay r3 removed",
                "maintenance window 1 (relay:r2): active",
                "site 1 drained",
                "site 2 back in service",
            ]
        );
        assert!(changes(&after, &after).is_empty(), "no change, no line");
    }

    #[test]
    fn the_ring_starts_from_a_baseline_counts_a_storm_and_stays_bounded() {
        let ring = EventRing::default();
        ring.observe(1, watched(Some(1), &[("r1", "active")]));
        assert!(ring.recent().is_empty(), "the first look is the baseline");
        let storm: Vec<(String, &'static str)> =
            (0..100).map(|n| (format!("r{n}"), "down")).collect();
        let storm: Vec<(&str, &'static str)> =
            storm.iter().map(|(id, s)| (id.as_str(), *s)).collect();
        ring.observe(2, watched(Some(1), &storm));
        let recent = ring.recent();
        assert_eq!(recent.len(), EVENTS_PER_LOOK_MAX + 1);
        assert_eq!(recent[0].text, "and 92 more changes");
        for n in 0..EVENTS_KEPT_MAX {
            ring.observe(3 + n as u64, watched(Some(1 + (n as u64 % 2)), &storm));
        }
        let recent = ring.recent();
        assert_eq!(recent.len(), EVENTS_KEPT_MAX);
        assert!(
            recent[0].at_unix_ms > recent[EVENTS_KEPT_MAX - 1].at_unix_ms,
            "newest first"
        );
    }
}
