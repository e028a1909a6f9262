//! Watches that outlive their site.
//!
//! A watch is one gRPC stream to one site. When that site dies, goes dark
//! without a reset, or is cut off from the leader, the stream either ends,
//! goes quiet, or carries only progress heartbeats that say the site is
//! stale. A [`Follower`] notices each of these within the client's
//! `watch_quiet_timeout` and reopens the watch at another known site from
//! the last index it saw completely, skipping what it already delivered of
//! a part-seen index (`position.rs`), so no change is
//! missed and none is delivered twice; when no site still holds that history, it starts again from the
//! full current state and says so ([`Followed::Restarted`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::BackoffBuilder;
use backon::ExponentialBackoff;
use backon::ExponentialBuilder;
use switchboard_proto::v1 as pb;
use tonic::Code;
use tonic::Streaming;

use super::ClientError;
use super::ClusterClient;
use super::position::Position;
use super::position::Verdict;

/// A message of a watch stream.
pub trait WatchMessage: Sized + Send + 'static {
    /// The log index the message is at.
    fn index(&self) -> u64;
    /// Tells this change apart from the others at its index (which host,
    /// where to), so a replay of a part-seen index skips what was
    /// delivered.
    fn change_key(&self) -> String;
    /// Whether this message ends the full current state a watch from
    /// index 0 starts with.
    fn ends_initial(&self) -> bool;
    /// For a progress heartbeat, the serving site's staleness; `None` for
    /// a change.
    fn progress_staleness_ms(&self) -> Option<u64>;
    /// Newer signed node info the message carries.
    fn node_info(&self) -> Option<&pb::SignedNodeInfo>;
    /// Opens a watch of `id` from after `after_index`, on the first site
    /// that takes it; answers the stream and that site.
    fn open(
        client: &ClusterClient,
        id: &str,
        after_index: u64,
    ) -> impl Future<Output = Result<(Streaming<Self>, String), ClientError>> + Send;
}

/// Implements [`WatchMessage`] for a watch event type whose stream the
/// client opens with `$open`.
macro_rules! watch_message {
    ($message:ty, $open:ident, $key:expr, $ends_initial:expr) => {
        impl WatchMessage for $message {
            fn index(&self) -> u64 {
                self.index
            }

            fn change_key(&self) -> String {
                $key(self)
            }

            fn ends_initial(&self) -> bool {
                $ends_initial(self)
            }

            fn progress_staleness_ms(&self) -> Option<u64> {
                self.progress.then_some(self.staleness_ms)
            }

            fn node_info(&self) -> Option<&pb::SignedNodeInfo> {
                self.node_info.as_ref()
            }

            async fn open(
                client: &ClusterClient,
                id: &str,
                after_index: u64,
            ) -> Result<(Streaming<Self>, String), ClientError> {
                client.$open(id, after_index).await
            }
        }
    };
}

// A host's watch starts with one message, its route.
watch_message!(
    pb::RouteEvent,
    open_watch_route,
    |m: &pb::RouteEvent| match &m.route {
        Some(route) => format!("{}@{}", route.relay_id, route.generation),
        None => String::new(),
    },
    |_: &pb::RouteEvent| true
);
// A relay's watch ends its full set with a `synced` message.
watch_message!(
    pb::RelayRoutesEvent,
    open_watch_relay_routes,
    |m: &pb::RelayRoutesEvent| format!("{}:{}@{}", m.host_id, m.attached, m.generation),
    |m: &pb::RelayRoutesEvent| m.synced
);

/// What a followed watch yields.
#[derive(Debug)]
pub enum Followed<T> {
    /// A change, or (after [`Followed::Restarted`]) part of the full state.
    Event(T),
    /// The watch (re)started from the full current state: drop what you
    /// hold from it first. The first thing every follower yields.
    Restarted,
}

/// A watch that moves to another site when its site fails.
pub struct Follower<T: WatchMessage> {
    client: Arc<ClusterClient>,
    id: String,
    position: Position,
    stream: Option<(Streaming<T>, String)>,
    backoff: ExponentialBackoff,
}

/// Whether a failed open is worth another try (else it is the caller's
/// mistake or lack of permission, which no site will answer otherwise).
fn final_refusal(code: Option<Code>) -> bool {
    matches!(
        code,
        Some(
            Code::InvalidArgument
                | Code::PermissionDenied
                | Code::Unauthenticated
                | Code::NotFound
                | Code::FailedPrecondition
        )
    )
}

impl<T: WatchMessage> Follower<T> {
    fn new(client: Arc<ClusterClient>, id: &str) -> Self {
        let backoff = Self::fresh_backoff(&client);
        Follower {
            client,
            id: id.to_owned(),
            position: Position::default(),
            stream: None,
            backoff,
        }
    }

    fn fresh_backoff(client: &ClusterClient) -> ExponentialBackoff {
        ExponentialBuilder::new()
            .with_min_delay(client.settings.backoff_initial)
            .with_max_delay(client.settings.backoff_max)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// The last index this follower has seen everything up to.
    pub fn index(&self) -> u64 {
        self.position.resume_after()
    }

    /// The site the watch is on now, if it is open.
    pub fn site(&self) -> Option<&str> {
        self.stream.as_ref().map(|(_, endpoint)| endpoint.as_str())
    }

    /// Gives up on the current site, which is stale but answering: the
    /// next open tries another first.
    fn leave(&mut self) {
        self.position.broke();
        if let Some((_, endpoint)) = self.stream.take() {
            self.client.step_past(&endpoint);
        }
    }

    /// Gives up on the current site, which went quiet or cut the stream:
    /// every call of the client tries it last for a while
    /// (`ClientSettings::suspect_for`).
    fn leave_unreached(&mut self) {
        self.position.broke();
        if let Some((_, endpoint)) = self.stream.take() {
            self.client.suspect(&endpoint);
        }
    }

    /// The next change. Waits as long as it takes, moving between sites;
    /// fails only with a final refusal (no permission, bad id).
    pub async fn next(&mut self) -> Result<Followed<T>, ClientError> {
        let quiet = self.client.settings.watch_quiet_timeout;
        loop {
            if self.stream.is_none() {
                let after = self.position.resume_after();
                match T::open(&self.client, &self.id, after).await {
                    Ok(opened) => {
                        self.stream = Some(opened);
                        self.backoff = Self::fresh_backoff(&self.client);
                        if self.position.opened() {
                            return Ok(Followed::Restarted);
                        }
                    }
                    // A site that no longer holds the history after our
                    // index (it restarted, or compacted) says so as it
                    // opens: start again from the full state, or the watch
                    // would ask the same site for ever.
                    Err(error) if error.code() == Some(Code::OutOfRange) => {
                        self.position.reset();
                        continue;
                    }
                    Err(error) if final_refusal(error.code()) => return Err(error),
                    Err(_) => {
                        let pause = self.backoff.next().unwrap_or(Duration::from_secs(1));
                        tokio::time::sleep(pause).await;
                        continue;
                    }
                }
            }
            let (stream, _) = self.stream.as_mut().expect("opened above");
            match tokio::time::timeout(quiet, stream.message()).await {
                Ok(Ok(Some(message))) => {
                    self.client.offer(message.node_info());
                    let Some(stale) = message.progress_staleness_ms() else {
                        let key = message.change_key();
                        let verdict =
                            self.position
                                .on_change(message.index(), key, message.ends_initial());
                        match verdict {
                            Verdict::Deliver => return Ok(Followed::Event(message)),
                            Verdict::Skip => continue,
                        }
                    };
                    self.position.on_progress(message.index());
                    if u128::from(stale) > quiet.as_millis() {
                        self.leave();
                    }
                }
                Ok(Err(status)) if status.code() == Code::OutOfRange => {
                    // The site no longer holds the history after our index.
                    self.position.reset();
                    self.stream = None;
                }
                Ok(Err(status)) if final_refusal(Some(status.code())) => {
                    let endpoint = self.stream.take().map(|(_, e)| e).unwrap_or_default();
                    return Err(ClientError::Refused {
                        endpoint,
                        code: status.code(),
                        message: status.message().to_owned(),
                    });
                }
                // Ended or failed: open again, another site first.
                Ok(Ok(None)) | Ok(Err(_)) => self.leave_unreached(),
                // Quiet past the heartbeats: the site or its link is gone.
                Err(_) => self.leave_unreached(),
            }
        }
    }
}

impl ClusterClient {
    /// Follows a host's route from its current state on, across sites.
    pub fn follow_route(self: &Arc<Self>, host_id: &str) -> Follower<pb::RouteEvent> {
        Follower::new(self.clone(), host_id)
    }

    /// Follows the hosts on a relay from the full current set on, across
    /// sites.
    pub fn follow_relay_routes(self: &Arc<Self>, relay_id: &str) -> Follower<pb::RelayRoutesEvent> {
        Follower::new(self.clone(), relay_id)
    }
}
