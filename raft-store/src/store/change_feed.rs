//! What changed, by log index, for watches.
//!
//! After each applied entry the state machine store publishes its route
//! moves and node-info epoch changes here. A watch replays the retained
//! events after the index it asks for, then follows live ones. History is
//! bounded: a watch from an index older than what is retained is refused
//! (OUT_OF_RANGE) and the caller resyncs from a full read. The history is in
//! memory, so it starts afresh when the site starts.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::state::RouteChange;

/// Events kept for replay. A relay going down moves all its hosts in one
/// entry, so this holds many such moves.
pub const FEED_EVENTS_RETAINED_MAX: usize = 100_000;
/// Live events a slow watcher may fall behind by before it is cut off (and
/// resyncs).
pub const FEED_LIVE_CAPACITY: usize = 16_384;

/// One change.
// The variants' fields are named for what they hold and each variant's
// doc says what it does; a doc per `relay_id: RelayId` would add nothing.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeEvent {
    /// A host's route moved.
    Route(RouteChange),
    /// Node info has a new version.
    NodeInfo { era: u64, epoch: u64 },
    /// The state was replaced (a snapshot was installed): history is gone,
    /// every watcher must resync.
    Reset,
}

/// A change and the log index that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedEvent {
    /// The log index that made it.
    pub index: u64,
    /// What changed.
    pub event: ChangeEvent,
}

struct History {
    events: VecDeque<Arc<IndexedEvent>>,
    /// Every event with an index at or above this is retained.
    complete_from: u64,
}

/// The feed of changes. Cloning shares it.
#[derive(Clone)]
pub struct ChangeFeed {
    history: Arc<Mutex<History>>,
    live: broadcast::Sender<Arc<IndexedEvent>>,
}

/// Retained events to replay, and the receiver of everything after them.
pub type Subscription = (
    Vec<Arc<IndexedEvent>>,
    broadcast::Receiver<Arc<IndexedEvent>>,
);

/// A watch asked for history that is no longer retained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// The oldest index a watch may start after (minus one).
    pub complete_from: u64,
}

impl ChangeFeed {
    /// A feed that knows every change from `complete_from` on.
    pub fn new(complete_from: u64) -> Self {
        let (live, _) = broadcast::channel(FEED_LIVE_CAPACITY);
        ChangeFeed {
            history: Arc::new(Mutex::new(History {
                events: VecDeque::new(),
                complete_from,
            })),
            live,
        }
    }

    /// Adds events (in index order) and wakes the watchers.
    pub fn publish(&self, events: impl IntoIterator<Item = IndexedEvent>) {
        let mut history = self.history.lock();
        for event in events {
            let event = Arc::new(event);
            if matches!(event.event, ChangeEvent::Reset) {
                history.events.clear();
                history.complete_from = event.index + 1;
            } else {
                history.events.push_back(event.clone());
            }
            // No receiver is not an error: nobody watches right now.
            let _ = self.live.send(event);
        }
        while history.events.len() > FEED_EVENTS_RETAINED_MAX {
            let Some(oldest) = history.events.pop_front() else {
                break;
            };
            // Drop the whole index, so what is kept is complete per index.
            while history
                .events
                .front()
                .is_some_and(|e| e.index == oldest.index)
            {
                history.events.pop_front();
            }
            history.complete_from = oldest.index + 1;
        }
    }

    /// The retained events after `after_index`, and a receiver of every
    /// event published after them (no gap, no repeat).
    pub fn subscribe(&self, after_index: u64) -> Result<Subscription, Compacted> {
        let history = self.history.lock();
        if after_index.saturating_add(1) < history.complete_from {
            return Err(Compacted {
                complete_from: history.complete_from,
            });
        }
        let receiver = self.live.subscribe();
        // Events are in index order: find the first to replay by bisection,
        // not by looking at all of them (up to FEED_EVENTS_RETAINED_MAX, with
        // the lock held that `publish`, on the apply path, needs; a reconnect
        // storm of watches spent 10 % of a site's CPU here).
        let first = history.events.partition_point(|e| e.index <= after_index);
        let replay = history.events.range(first..).cloned().collect();
        Ok((replay, receiver))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::HostId;

    fn route(index: u64, host: &str) -> IndexedEvent {
        IndexedEvent {
            index,
            event: ChangeEvent::Route(RouteChange {
                host_id: HostId::new(host).unwrap(),
                previous: None,
                current: None,
            }),
        }
    }

    #[test]
    fn watches_replay_then_follow_and_old_history_is_refused() {
        let feed = ChangeFeed::new(5);
        assert!(feed.subscribe(3).is_err(), "index 4 was never seen here");
        feed.publish([route(5, "a"), route(6, "b")]);
        let (replay, mut live) = feed.subscribe(5).unwrap();
        assert_eq!(replay.iter().map(|e| e.index).collect::<Vec<_>>(), vec![6]);
        feed.publish([route(7, "c")]);
        assert_eq!(live.try_recv().unwrap().index, 7);
        feed.publish([IndexedEvent {
            index: 9,
            event: ChangeEvent::Reset,
        }]);
        assert_eq!(
            feed.subscribe(7).unwrap_err(),
            Compacted { complete_from: 10 }
        );
    }

    proptest::proptest! {
        /// The replay is every retained event after the index asked for,
        /// in order, however many events each index has.
        #[test]
        fn the_replay_is_every_event_after_the_index(
            per_index in proptest::collection::vec(0usize..4, 1..40),
            after in 0u64..45,
        ) {
            let feed = ChangeFeed::new(1);
            let mut published = Vec::new();
            for (offset, count) in per_index.iter().enumerate() {
                let index = offset as u64 + 1;
                let events: Vec<_> = (0..*count).map(|n| route(index, &format!("h{n}"))).collect();
                published.extend(events.clone());
                feed.publish(events);
            }
            let (replay, _) = feed.subscribe(after).expect("index 0 on is retained");
            let expected: Vec<_> = published.into_iter().filter(|e| e.index > after).collect();
            let replayed: Vec<_> = replay.iter().map(|e| (**e).clone()).collect();
            proptest::prop_assert_eq!(replayed, expected);
        }
    }
}

#[cfg(test)]
mod same_index_tests {
    use super::*;
    use crate::ids::HostId;

    /// One entry (a relay going down) moves many hosts: every one of its
    /// events reaches a live watcher.
    #[test]
    fn every_event_of_one_entry_reaches_live_watchers() {
        let feed = ChangeFeed::new(1);
        let (_, mut live) = feed.subscribe(0).unwrap();
        let moves = ["a", "b", "c"].map(|host| IndexedEvent {
            index: 4,
            event: ChangeEvent::Route(RouteChange {
                host_id: HostId::new(host).unwrap(),
                previous: None,
                current: None,
            }),
        });
        feed.publish(moves.clone());
        for expected in moves {
            assert_eq!(*live.try_recv().unwrap(), expected);
        }
    }
}
