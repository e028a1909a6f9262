//! What changed, by log index, for watches.
//!
//! After each applied entry the state machine store publishes its route
//! moves and node-info epoch changes here. A watch replays the retained
//! events after the index it asks for, then follows live ones. History is
//! bounded: a watch from an index older than what is retained is refused
//! (OUT_OF_RANGE) and the caller resyncs from a full read. The history is in
//! memory, so it starts afresh when the site starts.
//!
//! Each subscriber names what it follows (a host, or a relay) and is handed
//! only the events about it (and every node-info change and reset), on its
//! own queue: a change wakes the watches it concerns, once per publish, not
//! every watch of the site. A subscriber that falls too far behind is cut
//! off and told so; it resyncs.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::collections::HashSet;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use tokio::sync::Notify;

use crate::ids::HostId;
use crate::ids::RelayId;
use crate::state::RouteChange;

/// Events kept for replay. A relay going down moves all its hosts in one
/// entry, so this holds many such moves.
pub const FEED_EVENTS_RETAINED_MAX: usize = 100_000;
/// Events queued for one subscriber before a publish, past which it is cut
/// off (and resyncs) instead of handed more: a relay's watch takes 10,000
/// moves when a relay under 100,000 hosts dies and its hosts spread over
/// ten. One publish may add more than this (an apply of many entries); the
/// subscriber is cut off only if it had not taken this many before it.
pub const FEED_SUBSCRIBER_EVENTS_MAX: usize = 65_536;

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

/// What a subscriber follows. Every subscriber also gets every node-info
/// change and every reset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Interest {
    /// A host's route changes.
    Host(HostId),
    /// Routes that move onto or off a relay (or change generation on it).
    Relay(RelayId),
}

impl Interest {
    /// Whether `event` concerns this subscriber.
    pub fn wants(&self, event: &ChangeEvent) -> bool {
        match (self, event) {
            (Interest::Host(host), ChangeEvent::Route(change)) => change.host_id == *host,
            (Interest::Relay(relay), ChangeEvent::Route(change)) => {
                routed_to(&change.previous, relay) || routed_to(&change.current, relay)
            }
            (_, ChangeEvent::NodeInfo { .. } | ChangeEvent::Reset) => true,
        }
    }
}

fn routed_to(route: &Option<(RelayId, u64)>, relay: &RelayId) -> bool {
    route.as_ref().is_some_and(|(on, _)| on == relay)
}

/// A subscriber's queue: events in index order, taken all at once by its
/// reader, which a publish wakes once.
#[derive(Default)]
struct Mailbox {
    queue: Mutex<Queued>,
    ready: Notify,
}

#[derive(Default)]
struct Queued {
    events: VecDeque<Arc<IndexedEvent>>,
    cut_off: bool,
}

struct Subscriber {
    interest: Interest,
    mailbox: Arc<Mailbox>,
}

/// The subscribers, indexed by what they follow.
#[derive(Default)]
struct Registry {
    next_id: u64,
    subscribers: HashMap<u64, Subscriber>,
    by_host: HashMap<HostId, HashSet<u64>>,
    by_relay: HashMap<RelayId, HashSet<u64>>,
}

impl Registry {
    fn add(&mut self, subscriber: Subscriber) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        match &subscriber.interest {
            Interest::Host(host) => self.by_host.entry(host.clone()).or_default().insert(id),
            Interest::Relay(relay) => self.by_relay.entry(relay.clone()).or_default().insert(id),
        };
        self.subscribers.insert(id, subscriber);
        id
    }

    fn remove(&mut self, id: u64) {
        let Some(subscriber) = self.subscribers.remove(&id) else {
            return;
        };
        match subscriber.interest {
            Interest::Host(host) => unindex(&mut self.by_host, host, id),
            Interest::Relay(relay) => unindex(&mut self.by_relay, relay, id),
        }
    }

    /// The subscribers `event` concerns, each once, into `out`.
    fn concerned(&self, event: &ChangeEvent, out: &mut Vec<u64>) {
        out.clear();
        match event {
            ChangeEvent::Route(change) => {
                out.extend(self.by_host.get(&change.host_id).into_iter().flatten());
                let left = change.previous.as_ref().map(|(relay, _)| relay);
                // A host that stays on its relay (a new generation) is one
                // event for that relay's watches, not two.
                let joined = change
                    .current
                    .as_ref()
                    .map(|(relay, _)| relay)
                    .filter(|relay| Some(*relay) != left);
                for relay in left.into_iter().chain(joined) {
                    out.extend(self.by_relay.get(relay).into_iter().flatten());
                }
            }
            ChangeEvent::NodeInfo { .. } | ChangeEvent::Reset => {
                out.extend(self.subscribers.keys());
            }
        }
    }
}

fn unindex<K: std::hash::Hash + Eq>(index: &mut HashMap<K, HashSet<u64>>, key: K, id: u64) {
    if let Some(ids) = index.get_mut(&key) {
        ids.remove(&id);
        if ids.is_empty() {
            index.remove(&key);
        }
    }
}

struct Inner {
    events: VecDeque<Arc<IndexedEvent>>,
    /// Every event with an index at or above this is retained.
    complete_from: u64,
    registry: Registry,
}

/// The feed of changes. Cloning shares it.
#[derive(Clone)]
pub struct ChangeFeed {
    inner: Arc<Mutex<Inner>>,
    /// Every event up to this index has been handed to its subscribers.
    published_index: Arc<AtomicU64>,
}

/// A watch asked for history that is no longer retained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// The oldest index a watch may start after (minus one).
    pub complete_from: u64,
}

/// A subscriber fell `FEED_SUBSCRIBER_EVENTS_MAX` events behind and was
/// cut off: it must resync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutOff;

/// A subscriber's retained events to replay, and its live events after
/// them (no gap, no repeat). Dropping it unsubscribes.
pub struct Subscription {
    /// The retained events after the index asked for that concern it.
    pub replay: Vec<Arc<IndexedEvent>>,
    /// The events published after the replay that concern it.
    pub live: LiveEvents,
}

/// A subscriber's queue of live events.
pub struct LiveEvents {
    id: u64,
    mailbox: Arc<Mailbox>,
    feed: ChangeFeed,
}

impl LiveEvents {
    /// Every event queued, in index order, waiting for one.
    pub async fn recv(&mut self) -> Result<Vec<Arc<IndexedEvent>>, CutOff> {
        loop {
            let taken = self.try_recv()?;
            if !taken.is_empty() {
                return Ok(taken);
            }
            // One reader: a wake-up sent while it was not waiting is kept.
            self.mailbox.ready.notified().await;
        }
    }

    /// Every event queued, in index order (none if none is).
    pub fn try_recv(&mut self) -> Result<Vec<Arc<IndexedEvent>>, CutOff> {
        let mut queued = self.mailbox.queue.lock();
        if !queued.events.is_empty() {
            return Ok(std::mem::take(&mut queued.events).into());
        }
        if queued.cut_off {
            return Err(CutOff);
        }
        Ok(Vec::new())
    }

    /// Every event up to this index that concerns this subscriber is queued
    /// here (or was taken). Read it before taking the queue to tell a caller
    /// how far it is: events after it may still be on their way.
    pub fn published_index(&self) -> u64 {
        self.feed.published_index.load(Ordering::Acquire)
    }
}

impl Drop for LiveEvents {
    fn drop(&mut self) {
        self.feed.inner.lock().registry.remove(self.id);
    }
}

impl ChangeFeed {
    /// A feed that knows every change from `complete_from` on.
    pub fn new(complete_from: u64) -> Self {
        ChangeFeed {
            inner: Arc::new(Mutex::new(Inner {
                events: VecDeque::new(),
                complete_from,
                registry: Registry::default(),
            })),
            published_index: Arc::new(AtomicU64::new(complete_from.saturating_sub(1))),
        }
    }

    /// Adds the events of the entries applied up to `applied_index` (in
    /// index order) and queues each for the subscribers it concerns, waking
    /// each of them once.
    pub fn publish(&self, applied_index: u64, events: impl IntoIterator<Item = IndexedEvent>) {
        let mut inner = self.inner.lock();
        let mut outbox: HashMap<u64, Vec<Arc<IndexedEvent>>> = HashMap::new();
        let mut concerned = Vec::new();
        for event in events {
            debug_assert!(event.index <= applied_index);
            let event = Arc::new(event);
            if matches!(event.event, ChangeEvent::Reset) {
                inner.events.clear();
                inner.complete_from = event.index + 1;
            } else {
                inner.events.push_back(event.clone());
            }
            inner.registry.concerned(&event.event, &mut concerned);
            for id in &concerned {
                outbox.entry(*id).or_default().push(event.clone());
            }
        }
        for (id, events) in outbox {
            hand_over(&mut inner.registry, id, events);
        }
        trim(&mut inner);
        self.published_index
            .fetch_max(applied_index, Ordering::Release);
    }

    /// The retained events after `after_index` that concern `interest`, and
    /// a queue of every such event published after them (no gap, no
    /// repeat), in batches.
    pub fn subscribe(
        &self,
        after_index: u64,
        interest: Interest,
    ) -> Result<Subscription, Compacted> {
        let mut inner = self.inner.lock();
        if after_index.saturating_add(1) < inner.complete_from {
            return Err(Compacted {
                complete_from: inner.complete_from,
            });
        }
        // Events are in index order: find the first to replay by bisection,
        // not by looking at all of them (up to FEED_EVENTS_RETAINED_MAX, with
        // the lock held that `publish`, on the apply path, needs; a reconnect
        // storm of watches spent 10 % of a site's CPU here).
        let first = inner.events.partition_point(|e| e.index <= after_index);
        let replay = inner
            .events
            .range(first..)
            .filter(|e| interest.wants(&e.event))
            .cloned()
            .collect();
        let mailbox = Arc::new(Mailbox::default());
        let id = inner.registry.add(Subscriber {
            interest,
            mailbox: mailbox.clone(),
        });
        Ok(Subscription {
            replay,
            live: LiveEvents {
                id,
                mailbox,
                feed: self.clone(),
            },
        })
    }

    /// Subscribers now (for tests and metrics).
    pub fn subscribers(&self) -> usize {
        self.inner.lock().registry.subscribers.len()
    }
}

/// Queues `events` for subscriber `id` and wakes it; one that had
/// `FEED_SUBSCRIBER_EVENTS_MAX` waiting already is cut off instead (it takes
/// what is queued, then learns why).
fn hand_over(registry: &mut Registry, id: u64, events: Vec<Arc<IndexedEvent>>) {
    let Some(subscriber) = registry.subscribers.get(&id) else {
        return;
    };
    let mailbox = subscriber.mailbox.clone();
    let cut_off = {
        let mut queued = mailbox.queue.lock();
        if queued.events.len() >= FEED_SUBSCRIBER_EVENTS_MAX {
            queued.cut_off = true;
        } else {
            queued.events.extend(events);
        }
        queued.cut_off
    };
    if cut_off {
        registry.remove(id);
    }
    mailbox.ready.notify_one();
}

/// Drops the oldest history beyond `FEED_EVENTS_RETAINED_MAX`, a whole
/// index at a time, so what is kept is complete per index.
fn trim(inner: &mut Inner) {
    while inner.events.len() > FEED_EVENTS_RETAINED_MAX {
        let Some(oldest) = inner.events.pop_front() else {
            break;
        };
        while inner
            .events
            .front()
            .is_some_and(|e| e.index == oldest.index)
        {
            inner.events.pop_front();
        }
        inner.complete_from = oldest.index + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str) -> HostId {
        HostId::new(name).unwrap()
    }

    fn relay(name: &str) -> RelayId {
        RelayId::new(name).unwrap()
    }

    fn moved(index: u64, host_id: &str, from: Option<&str>, to: Option<&str>) -> IndexedEvent {
        IndexedEvent {
            index,
            event: ChangeEvent::Route(RouteChange {
                host_id: host(host_id),
                previous: from.map(|r| (relay(r), 1)),
                current: to.map(|r| (relay(r), 2)),
            }),
        }
    }

    fn route(index: u64, host_id: &str) -> IndexedEvent {
        moved(index, host_id, None, None)
    }

    fn drain(live: &mut LiveEvents) -> Vec<IndexedEvent> {
        let mut out = Vec::new();
        let taken = live.try_recv().expect("not cut off");
        out.extend(taken.iter().map(|e| (**e).clone()));
        out
    }

    #[test]
    fn watches_replay_then_follow_and_old_history_is_refused() {
        let feed = ChangeFeed::new(5);
        let a = || Interest::Host(host("a"));
        assert!(
            feed.subscribe(3, a()).is_err(),
            "index 4 was never seen here"
        );
        feed.publish(6, [route(5, "a"), route(6, "a")]);
        let Subscription { replay, mut live } = feed.subscribe(5, a()).unwrap();
        assert_eq!(replay.iter().map(|e| e.index).collect::<Vec<_>>(), vec![6]);
        feed.publish(7, [route(7, "a")]);
        assert_eq!(drain(&mut live), vec![route(7, "a")]);
        assert_eq!(live.published_index(), 7);
        feed.publish(
            9,
            [IndexedEvent {
                index: 9,
                event: ChangeEvent::Reset,
            }],
        );
        assert_eq!(drain(&mut live)[0].event, ChangeEvent::Reset);
        assert_eq!(
            feed.subscribe(7, a()).err(),
            Some(Compacted { complete_from: 10 })
        );
    }

    /// A change wakes only the watches it concerns: the host's, and the
    /// relays' it left and joined (once each); node info reaches everyone.
    #[test]
    fn each_subscriber_gets_only_what_concerns_it() {
        let feed = ChangeFeed::new(1);
        let mut host_a = feed.subscribe(0, Interest::Host(host("a"))).unwrap().live;
        let mut host_b = feed.subscribe(0, Interest::Host(host("b"))).unwrap().live;
        let mut relay_x = feed.subscribe(0, Interest::Relay(relay("x"))).unwrap().live;
        let mut relay_y = feed.subscribe(0, Interest::Relay(relay("y"))).unwrap().live;
        let node_info = IndexedEvent {
            index: 4,
            event: ChangeEvent::NodeInfo { era: 1, epoch: 2 },
        };
        let events = [
            moved(1, "a", None, Some("x")),
            moved(2, "b", Some("x"), Some("y")),
            moved(3, "a", Some("x"), Some("x")),
            node_info.clone(),
        ];
        feed.publish(4, events.clone());
        let [to_x, x_to_y, x_again, _] = events;
        assert_eq!(
            drain(&mut host_a),
            vec![to_x.clone(), x_again.clone(), node_info.clone()]
        );
        assert_eq!(drain(&mut host_b), vec![x_to_y.clone(), node_info.clone()]);
        assert_eq!(
            drain(&mut relay_x),
            vec![to_x, x_to_y.clone(), x_again, node_info.clone()]
        );
        assert_eq!(drain(&mut relay_y), vec![x_to_y, node_info]);
    }

    /// A watch that stops reading is cut off once it has too many events
    /// waiting, takes what was queued, and learns why; the others go on.
    #[test]
    fn a_subscriber_that_falls_too_far_behind_is_cut_off() {
        let feed = ChangeFeed::new(1);
        let mut slow = feed.subscribe(0, Interest::Host(host("a"))).unwrap().live;
        let mut other = feed.subscribe(0, Interest::Host(host("b"))).unwrap().live;
        let many: Vec<_> = (0..FEED_SUBSCRIBER_EVENTS_MAX + 10)
            .map(|_| route(1, "a"))
            .collect();
        feed.publish(1, many);
        assert_eq!(
            feed.subscribers(),
            2,
            "one publish may queue more than the bound"
        );
        feed.publish(2, [route(2, "b")]);
        assert_eq!(feed.subscribers(), 2, "only its own events count");
        feed.publish(3, [route(3, "a"), route(3, "b")]);
        assert_eq!(feed.subscribers(), 1);
        assert_eq!(drain(&mut slow).len(), FEED_SUBSCRIBER_EVENTS_MAX + 10);
        assert_eq!(slow.try_recv().err(), Some(CutOff));
        assert_eq!(drain(&mut other), vec![route(2, "b"), route(3, "b")]);
    }

    /// A reader waiting for events is woken by the publish that queues them.
    #[tokio::test]
    async fn a_waiting_reader_is_woken_by_a_publish() {
        let feed = ChangeFeed::new(1);
        let mut live = feed.subscribe(0, Interest::Host(host("a"))).unwrap().live;
        let publisher = feed.clone();
        let waiting = tokio::spawn(async move { live.recv().await.map(|events| events.len()) });
        tokio::task::yield_now().await;
        publisher.publish(1, [route(1, "b")]);
        publisher.publish(2, [route(2, "a"), route(2, "a")]);
        assert_eq!(waiting.await.unwrap(), Ok(2));
    }

    #[test]
    fn dropping_a_subscription_unsubscribes() {
        let feed = ChangeFeed::new(1);
        let first = feed.subscribe(0, Interest::Host(host("a"))).unwrap();
        let second = feed.subscribe(0, Interest::Relay(relay("x"))).unwrap();
        assert_eq!(feed.subscribers(), 2);
        drop(first);
        drop(second);
        assert_eq!(feed.subscribers(), 0);
        let inner = feed.inner.lock();
        assert!(inner.registry.by_host.is_empty() && inner.registry.by_relay.is_empty());
    }

    /// A storm's events arrive in order.
    #[test]
    fn a_storm_arrives_in_order() {
        let feed = ChangeFeed::new(1);
        let mut live = feed.subscribe(0, Interest::Relay(relay("x"))).unwrap().live;
        let moves: Vec<_> = (0..1_000)
            .map(|n| moved(4 + n / 300, &format!("h{n}"), Some("x"), Some("y")))
            .collect();
        feed.publish(7, moves.clone());
        assert_eq!(drain(&mut live), moves);
    }

    proptest::proptest! {
        /// The index the feed routes a live change by picks exactly the
        /// subscribers whose interest wants it (the rule the replay uses),
        /// each once.
        #[test]
        fn live_routing_agrees_with_the_interest(
            host_n in 0u8..3,
            from in proptest::option::of(0u8..3),
            to in proptest::option::of(0u8..3),
        ) {
            let mut registry = Registry::default();
            let mut interests = HashMap::new();
            for n in 0..3u8 {
                for interest in [Interest::Host(host(&format!("h{n}"))), Interest::Relay(relay(&format!("r{n}")))] {
                    let id = registry.add(Subscriber { interest: interest.clone(), mailbox: Arc::default() });
                    interests.insert(id, interest);
                }
            }
            let event = moved(1, &format!("h{host_n}"), from.map(|n| format!("r{n}")).as_deref(), to.map(|n| format!("r{n}")).as_deref()).event;
            let mut routed = Vec::new();
            registry.concerned(&event, &mut routed);
            let mut wanted: Vec<u64> = interests.iter().filter(|(_, i)| i.wants(&event)).map(|(id, _)| *id).collect();
            wanted.sort_unstable();
            let mut sorted = routed.clone();
            sorted.sort_unstable();
            proptest::prop_assert_eq!(&sorted, &wanted);
            sorted.dedup();
            proptest::prop_assert_eq!(sorted.len(), routed.len(), "each once");
        }

        /// The replay is every retained event after the index asked for
        /// that concerns the subscriber, in order, however many events each
        /// index has.
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
                feed.publish(index, events);
            }
            let interest = Interest::Host(host("h1"));
            let replay = feed.subscribe(after, interest.clone()).expect("index 0 on is retained").replay;
            let expected: Vec<_> = published
                .into_iter()
                .filter(|e| e.index > after && interest.wants(&e.event))
                .collect();
            let replayed: Vec<_> = replay.iter().map(|e| (**e).clone()).collect();
            proptest::prop_assert_eq!(replayed, expected);
        }
    }
}
