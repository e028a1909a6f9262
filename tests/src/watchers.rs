//! Route watchers beside the workload: one followed watch per host,
//! recording what it was told, and the invariants a watch must keep.
//!
//! Within one run of a watch (between restarts from the full state) every
//! change comes once and in log order, so indexes strictly rise and a
//! host's generation never falls; after healing, every watch arrives at
//! the route a linearizable read gives (nothing lost).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;

use switchboard_api::ClusterClient;
use switchboard_api::Followed;
use switchboard_proto::v1 as pb;

use crate::history::AckedWrite;

/// What one watch was told, in order; `None` marks a restart.
pub type Told = Vec<Option<(u64, Option<(String, u64)>)>>;

/// Watches of every workload host.
pub struct Watchers {
    told: Arc<Mutex<BTreeMap<String, Told>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Watchers {
    /// Follows every host in `hosts` through `client`.
    pub fn start(client: Arc<ClusterClient>, hosts: &[String]) -> Watchers {
        let told: Arc<Mutex<BTreeMap<String, Told>>> = Arc::new(Mutex::new(BTreeMap::new()));
        let tasks = hosts
            .iter()
            .map(|host| {
                let (told, client, host) = (told.clone(), client.clone(), host.clone());
                tokio::spawn(async move {
                    let mut follower = client.follow_route(&host);
                    while let Ok(followed) = follower.next().await {
                        let entry = match followed {
                            Followed::Restarted => None,
                            Followed::Event(event) => {
                                Some((event.index, event.route.map(|r| (r.relay_id, r.generation))))
                            }
                        };
                        told.lock()
                            .expect("watchers lock")
                            .entry(host.clone())
                            .or_default()
                            .push(entry);
                    }
                })
            })
            .collect();
        Watchers { told, tasks }
    }

    /// The last route each watch was told.
    pub fn last_told(&self) -> BTreeMap<String, Option<(String, u64)>> {
        self.told
            .lock()
            .expect("watchers lock")
            .iter()
            .filter_map(|(host, told)| {
                told.iter()
                    .rev()
                    .flatten()
                    .next()
                    .map(|(_, route)| (host.clone(), route.clone()))
            })
            .collect()
    }

    /// What the watch of `host` was told, for a failure message.
    pub fn record_of(&self, host: &str) -> Told {
        self.told
            .lock()
            .expect("watchers lock")
            .get(host)
            .cloned()
            .unwrap_or_default()
    }

    /// Every broken invariant, as text.
    pub fn violations(&self) -> Vec<String> {
        let told = self.told.lock().expect("watchers lock");
        told.iter()
            .flat_map(|(host, told)| {
                violations_of(host, told)
                    .into_iter()
                    .map(move |violation| format!("{violation}; record {told:?}"))
            })
            .collect()
    }

    /// Acknowledged writes that a watch of the host, running across their
    /// index without a restart, was not told of.
    pub fn missed(&self, writes: &[AckedWrite]) -> Vec<String> {
        let told = self.told.lock().expect("watchers lock");
        writes
            .iter()
            .filter(|w| {
                told.get(&w.host)
                    .is_some_and(|t| missed_in(t, w.index, &w.route))
            })
            .map(|w| format!("{}: {:?} at index {}", w.host, w.route, w.index))
            .collect()
    }

    /// Stops every watch.
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// The invariants of one watch's record.
pub fn violations_of(host: &str, told: &Told) -> Vec<String> {
    let mut found = Vec::new();
    let (mut index, mut generation) = (None::<u64>, 0);
    for entry in told {
        let Some((at, route)) = entry else {
            (index, generation) = (None, 0);
            continue;
        };
        if index.is_some_and(|last| *at <= last) {
            found.push(format!("{host}: index {at} after {}", index.unwrap_or(0)));
        }
        index = Some(*at);
        if let Some((_, seen)) = route {
            if *seen < generation {
                found.push(format!("{host}: generation {seen} after {generation}"));
            }
            generation = *seen;
        }
    }
    found
}

/// Whether a run of `told` (between restarts) spans `index` but says the
/// host's route there was not `route`. A run starts with the state at its
/// first index and reports every change after that, so the route as of
/// any index up to its last event is that of its last event at or before
/// the index.
pub fn missed_in(told: &Told, index: u64, route: &Option<(String, u64)>) -> bool {
    told.split(Option::is_none).any(|run| {
        let events: Vec<&(u64, Option<(String, u64)>)> = run.iter().flatten().collect();
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return false;
        };
        if index < first.0 || index > last.0 {
            return false;
        }
        let as_of = events.iter().rev().find(|(at, _)| *at <= index);
        as_of.is_some_and(|(_, told)| told != route)
    })
}

/// The route a linearizable read gives, as the watchers record it.
pub fn as_told(route: Option<&pb::Route>) -> Option<(String, u64)> {
    route.map(|r| (r.relay_id.clone(), r.generation))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(relay: &str, generation: u64) -> Option<(String, u64)> {
        Some((relay.to_owned(), generation))
    }

    #[test]
    fn reordered_repeated_or_regressing_events_are_caught_and_restarts_reset() {
        let good: Told = vec![
            None,
            Some((5, route("r1", 2))),
            Some((9, None)),
            Some((12, route("r2", 7))),
            None,
            Some((10, route("r2", 7))),
        ];
        assert!(
            violations_of("h", &good).is_empty(),
            "a restart may start lower"
        );
        let reordered: Told = vec![None, Some((9, route("r1", 2))), Some((9, route("r1", 3)))];
        assert_eq!(violations_of("h", &reordered).len(), 1);
        let regressed: Told = vec![None, Some((5, route("r1", 4))), Some((6, route("r2", 3)))];
        assert_eq!(violations_of("h", &regressed).len(), 1);
    }

    #[test]
    fn a_write_inside_a_run_must_have_been_told_and_one_outside_need_not() {
        let told: Told = vec![
            None,
            Some((5, route("r1", 2))),
            Some((9, None)),
            Some((12, route("r2", 7))),
            None,
            Some((20, route("r2", 7))),
        ];
        assert!(!missed_in(&told, 9, &None), "detach told at 9");
        assert!(!missed_in(&told, 10, &None), "still detached at 10");
        assert!(
            missed_in(&told, 11, &route("r3", 8)),
            "an attach at 11 not told"
        );
        assert!(missed_in(&told, 7, &None), "a detach at 7 not told");
        assert!(
            !missed_in(&told, 5, &route("r1", 2)),
            "the run's first state"
        );
        assert!(
            !missed_in(&told, 6, &route("r1", 2)),
            "an attach that kept r1"
        );
        assert!(
            missed_in(&told, 12, &route("r2", 8)),
            "told another generation"
        );
        assert!(
            !missed_in(&told, 4, &None),
            "before the run: not its business"
        );
        assert!(
            !missed_in(&told, 15, &None),
            "between runs: the restart covers it"
        );
        assert!(
            !missed_in(&told, 25, &None),
            "after the last event: not yet due"
        );
    }
}
