//! Watches: a stream of a host's route, or of a relay's hosts, from a log
//! index on, with node-info updates folded in.
//!
//! A watch from index 0 starts with the current state, then follows the
//! change feed; when it has sent nothing for `WATCH_PROGRESS_INTERVAL`
//! (nothing changed for its host or relay, whatever else did) it sends a
//! progress heartbeat with the index it is at and the site's staleness, so
//! a client can tell a quiet watch from a dead or cut-off one. A watch from
//! an older index than the site retains, or one
//! that falls behind the live feed, ends with OUT_OF_RANGE: the caller
//! resyncs from a full read (index 0).

use std::sync::Arc;
use std::time::Duration;

use switchboard_proto::v1 as pb;
use switchboard_raft_store::ids::HostId;
use switchboard_raft_store::ids::RelayId;
use switchboard_raft_store::store::AppliedState;
use switchboard_raft_store::store::ChangeEvent;
use switchboard_raft_store::store::CutOff;
use switchboard_raft_store::store::IndexedEvent;
use switchboard_raft_store::store::Interest;
use switchboard_raft_store::store::LiveEvents;
use switchboard_raft_store::store::Subscription;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::services::auth::Principal;
use crate::services::watch_slots::WatchSlot;
use crate::site::Site;
use switchboard_api::convert;

/// Messages buffered per watcher before it counts as slow.
pub const WATCH_BUFFER_MESSAGES: usize = 256;
/// How often a watch with nothing to send says it is alive (a progress
/// heartbeat, as etcd's progress notify): a tenth of the default relay
/// lease, so a client that hears nothing for a few of them (the library's
/// `watch_quiet_timeout`, 3 s) moves to another site well within a lease.
pub const WATCH_PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// A stream of watch messages.
pub type WatchStream<T> = ReceiverStream<Result<T, Status>>;

fn out_of_range(reason: &str) -> Status {
    Status::out_of_range(format!("{reason}; resync from index 0"))
}

/// What a watch sends for one event, if anything.
trait Watcher: Send + 'static {
    type Message: Send + 'static;
    /// What it follows: the feed hands it only those events (and every
    /// node-info change and reset).
    fn interest(&self) -> Interest;
    /// Messages for one change.
    fn on_event(&mut self, site: &Site, event: &IndexedEvent) -> Vec<Self::Message>;
    /// A progress heartbeat: everything up to `index` was sent, and the
    /// serving site is `staleness_ms` stale.
    fn progress(&self, index: u64, staleness_ms: u64) -> Self::Message;
}

/// Runs a watch: initial messages, replay, then live events, into a bounded stream.
fn run<W: Watcher>(
    site: Arc<Site>,
    slot: WatchSlot,
    watcher: W,
    after_index: u64,
    initial: Vec<W::Message>,
) -> Result<WatchStream<W::Message>, Status> {
    let Subscription { replay, mut live } = site
        .feed
        .subscribe(after_index, watcher.interest())
        .map_err(|compacted| {
            out_of_range(&format!(
                "this site keeps changes from index {} on",
                compacted.complete_from
            ))
        })?;
    let (sender, receiver) = mpsc::channel(WATCH_BUFFER_MESSAGES);
    metrics::gauge!("switchboard_watches").increment(1.0);
    tokio::spawn(async move {
        // Held until the watch ends.
        let _slot = slot;
        let mut heartbeat = tokio::time::interval(WATCH_PROGRESS_INTERVAL);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.reset();
        let mut watch = Watch {
            site,
            watcher,
            sender,
            heartbeat,
            after_index,
            sent_up_to: after_index,
        };
        if watch.send_all(initial).await && watch.deliver(&replay).await {
            watch.follow(&mut live).await;
        }
        metrics::gauge!("switchboard_watches").decrement(1.0);
    });
    Ok(ReceiverStream::new(receiver))
}

/// A running watch.
struct Watch<W: Watcher> {
    site: Arc<Site>,
    watcher: W,
    sender: mpsc::Sender<Result<W::Message, Status>>,
    heartbeat: tokio::time::Interval,
    /// The index the caller has seen: nothing at or before it is sent.
    after_index: u64,
    /// The highest index of an event handed to the watcher.
    sent_up_to: u64,
}

impl<W: Watcher> Watch<W> {
    /// Sends `messages` in order: false once the caller is gone.
    async fn send_all(&mut self, messages: Vec<W::Message>) -> bool {
        if messages.is_empty() {
            return true;
        }
        // The progress heartbeat waits for a quiet watch, and a watch quiet
        // for its own host or relay is quiet.
        self.heartbeat.reset();
        for message in messages {
            if self.sender.send(Ok(message)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Sends what `events` mean to this watch: false once it has ended.
    async fn deliver(&mut self, events: &[Arc<IndexedEvent>]) -> bool {
        for event in events {
            // A site behind the caller (a watch moved here from a site
            // further ahead) applies entries the caller was already told
            // of: they are not sent again, nor out of order.
            if event.index <= self.after_index {
                continue;
            }
            self.sent_up_to = self.sent_up_to.max(event.index);
            if matches!(event.event, ChangeEvent::Reset) {
                self.end(out_of_range("the site installed a snapshot"))
                    .await;
                return false;
            }
            let messages = self.watcher.on_event(&self.site, event);
            if !self.send_all(messages).await {
                return false;
            }
        }
        true
    }

    async fn end(&mut self, status: Status) {
        let _ = self.sender.send(Err(status)).await;
    }

    /// Follows the live events until the watch ends; says where it is when
    /// it has sent nothing for a while.
    async fn follow(&mut self, live: &mut LiveEvents) {
        // A caller may come from a site further ahead; this one must reach
        // the caller's index within a local read's staleness bound, or the
        // index is one no site may reach soon (u64::MAX, say).
        let catch_up_by = tokio::time::Instant::now() + self.site.settings.local_read_stale_max;
        loop {
            // The feed hands each event once: replayed ones were published
            // before the subscription, live ones after it.
            let events = tokio::select! {
                _ = self.sender.closed() => return,
                events = live.recv() => events,
                _ = self.heartbeat.tick() => {
                    if !self.quiet(live, catch_up_by).await {
                        return;
                    }
                    continue;
                }
            };
            if !self.take(events).await {
                return;
            }
        }
    }

    /// The watch has sent nothing for a progress interval: sends a progress
    /// heartbeat with the index everything concerning it was sent up to.
    /// False once the watch has ended.
    async fn quiet(&mut self, live: &mut LiveEvents, catch_up_by: tokio::time::Instant) -> bool {
        let applied = self.site.reader.load().applied_index();
        if applied < self.after_index && tokio::time::Instant::now() >= catch_up_by {
            let reason = format!(
                "this site is at index {applied} and did not reach index {} within {} ms",
                self.after_index,
                self.site.settings.local_read_stale_max.as_millis()
            );
            self.end(out_of_range(&reason)).await;
            return false;
        }
        // Every event up to `published` that concerns this watch is queued:
        // send those first, so the progress index never passes an event not
        // yet sent.
        let published = live.published_index();
        if !self.take(live.try_recv()).await {
            return false;
        }
        let through = published.max(self.after_index);
        // Past `through` (part of a later publish was sent): the watch is not
        // quiet. Skipped too when the buffer is full.
        if self.sent_up_to <= through {
            let staleness = self.site.staleness_ms().unwrap_or(u64::MAX);
            let _ = self
                .sender
                .try_send(Ok(self.watcher.progress(through, staleness)));
        }
        true
    }

    /// Sends what the feed handed over, or ends a watch it cut off: false
    /// once the watch has ended.
    async fn take(&mut self, taken: Result<Vec<Arc<IndexedEvent>>, CutOff>) -> bool {
        match taken {
            Ok(events) => self.deliver(&events).await,
            Err(CutOff) => {
                metrics::counter!("switchboard_watches_cut_off_total").increment(1);
                self.end(out_of_range("the watch fell behind")).await;
                false
            }
        }
    }
}

/// Tracks the node-info version a watcher has, to send newer documents.
struct KnownNodeInfo(Option<pb::NodeInfoVersion>);

impl KnownNodeInfo {
    fn newer(&mut self, site: &Site) -> Option<pb::SignedNodeInfo> {
        let signed = site.node_info_if_newer(self.0.as_ref())?;
        self.0 = Some(pb::NodeInfoVersion {
            era: signed.era,
            epoch: signed.epoch,
        });
        Some(signed)
    }
}

struct HostWatcher {
    host_id: HostId,
    known: KnownNodeInfo,
}

/// A host's route in `applied`, as an event at its index.
fn route_event(
    applied: &AppliedState,
    host_id: &HostId,
    node_info: Option<pb::SignedNodeInfo>,
) -> pb::RouteEvent {
    let route = applied
        .state
        .route(host_id)
        .map(|route| convert::route(&route));
    let index = applied.applied_index();
    pb::RouteEvent {
        host_id: host_id.to_string(),
        route,
        index,
        node_info,
        ..Default::default()
    }
}

impl Watcher for HostWatcher {
    type Message = pb::RouteEvent;

    fn interest(&self) -> Interest {
        Interest::Host(self.host_id.clone())
    }

    fn progress(&self, index: u64, staleness_ms: u64) -> pb::RouteEvent {
        pb::RouteEvent {
            host_id: self.host_id.to_string(),
            index,
            progress: true,
            staleness_ms,
            ..Default::default()
        }
    }

    fn on_event(&mut self, site: &Site, event: &IndexedEvent) -> Vec<pb::RouteEvent> {
        match &event.event {
            ChangeEvent::Route(change) if change.host_id == self.host_id => {
                let route = match &change.current {
                    Some((relay_id, generation)) => {
                        let applied = site.reader.load();
                        let endpoint = applied
                            .state
                            .relay(relay_id)
                            .map(|r| r.endpoint.clone())
                            .unwrap_or_default();
                        let current = applied.state.route(&self.host_id);
                        Some(pb::Route {
                            host_id: self.host_id.to_string(),
                            relay_id: relay_id.to_string(),
                            relay_endpoint: endpoint,
                            generation: *generation,
                            since_unix_ms: current.as_ref().map_or(0, |r| r.since_ms),
                            preferred_region: current
                                .map(|r| r.preferred_region)
                                .unwrap_or_default(),
                        })
                    }
                    None => None,
                };
                let node_info = self.known.newer(site);
                vec![pb::RouteEvent {
                    host_id: self.host_id.to_string(),
                    route,
                    index: event.index,
                    node_info,
                    ..Default::default()
                }]
            }
            // New node info rides on a progress message: the route as of
            // this index is whatever the watch last sent (the state now may
            // be further on, and a route read from it, labelled with this
            // index, would arrive out of order).
            ChangeEvent::NodeInfo { .. } => match self.known.newer(site) {
                Some(node_info) => {
                    let staleness = site.staleness_ms().unwrap_or(u64::MAX);
                    let mut message = self.progress(event.index, staleness);
                    message.node_info = Some(node_info);
                    vec![message]
                }
                None => Vec::new(),
            },
            _ => Vec::new(),
        }
    }
}

/// A host's route: the current one (from index 0), then every change.
pub fn watch_host(
    site: Arc<Site>,
    principal: &Principal,
    host_id: HostId,
    after_index: u64,
    known: Option<pb::NodeInfoVersion>,
) -> Result<WatchStream<pb::RouteEvent>, Status> {
    let slot = site.watch_slots.take(principal)?;
    let mut known = KnownNodeInfo(known);
    let (start, initial) = if after_index == 0 {
        // One load: the route and the index it is at come from one state.
        let applied = site.reader.load();
        let node_info = known.newer(&site);
        let event = route_event(&applied, &host_id, node_info);
        (applied.applied_index(), vec![event])
    } else {
        (after_index, Vec::new())
    };
    run(site, slot, HostWatcher { host_id, known }, start, initial)
}

struct RelayWatcher {
    relay_id: RelayId,
    known: KnownNodeInfo,
}

impl Watcher for RelayWatcher {
    type Message = pb::RelayRoutesEvent;

    fn interest(&self) -> Interest {
        Interest::Relay(self.relay_id.clone())
    }

    fn progress(&self, index: u64, staleness_ms: u64) -> pb::RelayRoutesEvent {
        pb::RelayRoutesEvent {
            index,
            progress: true,
            staleness_ms,
            ..Default::default()
        }
    }

    fn on_event(&mut self, site: &Site, event: &IndexedEvent) -> Vec<pb::RelayRoutesEvent> {
        let mut out = Vec::new();
        match &event.event {
            ChangeEvent::Route(change) => {
                if let Some((relay_id, _)) = &change.previous
                    && *relay_id == self.relay_id
                    && change
                        .current
                        .as_ref()
                        .is_none_or(|(now, _)| *now != self.relay_id)
                {
                    out.push(pb::RelayRoutesEvent {
                        host_id: change.host_id.to_string(),
                        generation: 0,
                        attached: false,
                        index: event.index,
                        synced: false,
                        ..Default::default()
                    });
                }
                if let Some((relay_id, generation)) = &change.current
                    && *relay_id == self.relay_id
                {
                    out.push(pb::RelayRoutesEvent {
                        host_id: change.host_id.to_string(),
                        generation: *generation,
                        attached: true,
                        index: event.index,
                        synced: false,
                        ..Default::default()
                    });
                }
            }
            ChangeEvent::NodeInfo { .. } => {
                if let Some(node_info) = self.known.newer(site) {
                    out.push(pb::RelayRoutesEvent {
                        index: event.index,
                        node_info: Some(node_info),
                        ..Default::default()
                    });
                }
            }
            ChangeEvent::Reset => {}
        }
        out
    }
}

/// The hosts routed to a relay: all of them (from index 0), then changes.
pub fn watch_relay(
    site: Arc<Site>,
    principal: &Principal,
    relay_id: RelayId,
    after_index: u64,
    known: Option<pb::NodeInfoVersion>,
) -> Result<WatchStream<pb::RelayRoutesEvent>, Status> {
    let slot = site.watch_slots.take(principal)?;
    let mut known = KnownNodeInfo(known);
    let (start, initial) = if after_index == 0 {
        let applied = site.reader.load();
        let index = applied.applied_index();
        let mut initial: Vec<pb::RelayRoutesEvent> = applied
            .state
            .routes()
            .hosts_on(&relay_id)
            .map(|host_id| pb::RelayRoutesEvent {
                host_id: host_id.to_string(),
                generation: applied
                    .state
                    .routes()
                    .get(host_id)
                    .map_or(0, |r| r.generation),
                attached: true,
                index,
                synced: false,
                ..Default::default()
            })
            .collect();
        initial.push(pb::RelayRoutesEvent {
            index,
            synced: true,
            node_info: known.newer(&site),
            ..Default::default()
        });
        (index, initial)
    } else {
        (after_index, Vec::new())
    };
    run(site, slot, RelayWatcher { relay_id, known }, start, initial)
}
