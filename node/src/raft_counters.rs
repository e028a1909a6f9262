//! Counters of leadership: leader changes and elections this site saw,
//! from openraft's metrics channel (which reports every change, so none is
//! missed between scrapes).

use std::sync::Arc;

use openraft::ServerState;
use openraft::async_runtime::watch::WatchReceiver;
use tokio::sync::watch;

use crate::site::Site;

/// What the counters look at in one metrics report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The Raft term.
    pub term: u64,
    /// The leader of that term, once known.
    pub leader: Option<u64>,
    /// Whether this site is campaigning.
    pub candidate: bool,
}

/// What one report adds to the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    /// A leader became known for a term not seen led before.
    pub leader_change: bool,
    /// This site started campaigning.
    pub election_started: bool,
}

/// What the counters remember between reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    /// The last (term, leader) seen.
    led: Option<(u64, u64)>,
    /// The term of the last campaign seen.
    campaigned: Option<u64>,
}

impl Counter {
    /// Starts from `first` without counting it.
    pub fn baseline(first: &Seen) -> Self {
        let mut counter = Self::default();
        counter.observe(first);
        counter
    }

    /// Counts `seen`. A term has at most one leader, so a leader change is
    /// a (term, leader) pair not seen before; the same leader seen again
    /// after a moment unknown is none. A campaign counts once per term.
    pub fn observe(&mut self, seen: &Seen) -> Counted {
        let led = seen.leader.map(|leader| (seen.term, leader));
        let leader_change = led.is_some() && led != self.led;
        if led.is_some() {
            self.led = led;
        }
        let election_started = seen.candidate && self.campaigned != Some(seen.term);
        if seen.candidate {
            self.campaigned = Some(seen.term);
        }
        Counted {
            leader_change,
            election_started,
        }
    }
}

/// Counts `switchboard_raft_leader_changes_total` and
/// `switchboard_raft_elections_total` until `stop`. The first report is the
/// baseline: a site that starts and finds a leader counts no change.
pub async fn run_raft_counters(site: Arc<Site>, mut stop: watch::Receiver<bool>) {
    let mut reports = site.raft.metrics();
    let seen_of = |m: &openraft::RaftMetrics<switchboard_raft_store::TypeConfig>| Seen {
        term: m.current_term,
        leader: m.current_leader,
        candidate: m.state == ServerState::Candidate,
    };
    let mut counter = Counter::baseline(&seen_of(&reports.borrow_watched()));
    loop {
        tokio::select! {
            changed = reports.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        let counted = counter.observe(&seen_of(&reports.borrow_watched()));
        if counted.leader_change {
            metrics::counter!("switchboard_raft_leader_changes_total").increment(1);
        }
        if counted.election_started {
            metrics::counter!("switchboard_raft_elections_total").increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(term: u64, leader: Option<u64>, candidate: bool) -> Seen {
        Seen {
            term,
            leader,
            candidate,
        }
    }

    #[test]
    fn a_new_term_with_a_leader_is_one_change_and_a_leader_seen_again_is_none() {
        let led = seen(3, Some(1), false);
        let mut counter = Counter::baseline(&led);
        assert!(!counter.observe(&led).leader_change, "nothing changed");
        assert!(
            !counter.observe(&seen(3, None, false)).leader_change,
            "lost"
        );
        assert!(
            !counter.observe(&led).leader_change,
            "same term, same leader again"
        );
        assert!(counter.observe(&seen(4, Some(2), false)).leader_change);
        assert!(
            counter.observe(&seen(5, Some(2), false)).leader_change,
            "re-elected"
        );
        let mut fresh = Counter::baseline(&seen(0, None, false));
        assert!(
            fresh.observe(&led).leader_change,
            "the first leader a new site sees"
        );
    }

    #[test]
    fn campaigning_counts_once_per_term_it_starts() {
        let mut counter = Counter::baseline(&seen(3, Some(1), false));
        let campaign = seen(4, None, true);
        assert!(counter.observe(&campaign).election_started);
        assert!(
            !counter.observe(&campaign).election_started,
            "same campaign"
        );
        assert!(
            counter.observe(&seen(5, None, true)).election_started,
            "a new term"
        );
        assert!(!counter.observe(&seen(5, Some(3), false)).election_started);
        assert!(
            !counter.observe(&seen(5, None, true)).election_started,
            "term 5 counted"
        );
    }
}
