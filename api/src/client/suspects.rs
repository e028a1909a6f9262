//! Sites suspected dark: the ones a call or a watch just failed to reach.
//!
//! A site that lost power or sits behind a cut line answers nothing; every
//! request sent to it waits out a connect timeout or, on a connection not
//! yet noticed dead, the whole attempt timeout, and tonic's channel makes
//! its reconnect attempts one queued request after another. A round of
//! retries that reaches such a site before a live one can cost several
//! seconds — longer than a relay's view of its routes may lag
//! (`ClientSettings::watch_failover_bound`). So a site that failed at the
//! transport is tried only after every other site, for
//! `ClientSettings::suspect_for` or until it answers again.
//!
//! Pure: time comes in as an argument.

use std::collections::HashMap;
use std::time::Duration;
use std::time::Instant;

/// Most sites remembered as suspect at once. A cluster has a handful of
/// sites (node info caps them far lower); the bound only keeps a client
/// given endless bogus endpoints from growing without end.
pub(super) const SUSPECTS_MAX: usize = 256;

/// The sites a client tries last, each until when.
#[derive(Debug, Default)]
pub struct Suspects {
    until: HashMap<String, Instant>,
}

impl Suspects {
    /// `endpoint` just failed at the transport: try it last until
    /// `now + suspect_for`.
    pub fn suspect(&mut self, endpoint: &str, now: Instant, suspect_for: Duration) {
        if self.until.len() >= SUSPECTS_MAX && !self.until.contains_key(endpoint) {
            self.until.retain(|_, until| *until > now);
            if self.until.len() >= SUSPECTS_MAX {
                return;
            }
        }
        self.until.insert(endpoint.to_owned(), now + suspect_for);
    }

    /// `endpoint` answered: it is no longer suspect.
    pub fn clear(&mut self, endpoint: &str) {
        self.until.remove(endpoint);
    }

    /// Whether `endpoint` is suspect at `now`.
    pub fn is_suspect(&self, endpoint: &str, now: Instant) -> bool {
        self.until.get(endpoint).is_some_and(|until| *until > now)
    }

    /// `order` with the sites suspect at `now` moved to its end, each part
    /// in its own order. Suspects are still tried: when every site failed,
    /// one of them may be the first back.
    pub fn last(&self, order: Vec<String>, now: Instant) -> Vec<String> {
        let (suspect, trusted): (Vec<String>, Vec<String>) =
            order.into_iter().partition(|e| self.is_suspect(e, now));
        trusted.into_iter().chain(suspect).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_suspect_goes_last_until_its_time_is_up() {
        let start = Instant::now();
        let mut suspects = Suspects::default();
        suspects.suspect("b", start, Duration::from_secs(10));
        let order = sites(&["a", "b", "c"]);
        assert_eq!(suspects.last(order.clone(), start), sites(&["a", "c", "b"]));
        let later = start + Duration::from_secs(10);
        assert_eq!(suspects.last(order, later), sites(&["a", "b", "c"]));
    }

    #[test]
    fn suspects_keep_their_order_and_every_site_stays_in_the_round() {
        let start = Instant::now();
        let mut suspects = Suspects::default();
        suspects.suspect("d", start, Duration::from_secs(5));
        suspects.suspect("a", start, Duration::from_secs(5));
        let order = sites(&["a", "b", "c", "d"]);
        assert_eq!(suspects.last(order, start), sites(&["b", "c", "a", "d"]));
    }

    #[test]
    fn an_answer_clears_a_suspect() {
        let start = Instant::now();
        let mut suspects = Suspects::default();
        suspects.suspect("a", start, Duration::from_secs(5));
        suspects.clear("a");
        assert!(!suspects.is_suspect("a", start));
    }

    #[test]
    fn the_set_is_bounded_and_forgets_lapsed_suspects_first() {
        let start = Instant::now();
        let mut suspects = Suspects::default();
        for i in 0..SUSPECTS_MAX {
            suspects.suspect(&format!("old{i}"), start, Duration::from_secs(1));
        }
        let later = start + Duration::from_secs(2);
        suspects.suspect("new", later, Duration::from_secs(1));
        assert!(suspects.is_suspect("new", later));
        assert_eq!(suspects.until.len(), 1);
        for i in 0..SUSPECTS_MAX {
            suspects.suspect(&format!("more{i}"), later, Duration::from_secs(5));
        }
        assert!(suspects.until.len() <= SUSPECTS_MAX);
    }
}
