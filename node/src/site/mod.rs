//! The running site: what every service shares, and the paths every write
//! and read takes.
//!
//! - `writes`: any site accepts a write and forwards it to the leader.
//! - `local_reads`: the applied state as it is, with its staleness.
//! - `linearizable_reads`: a read index from the leader, then apply up to it.
//! - `freshness`: how long ago this site last caught up with a leader.
//! - `members`, `gates`, `leadership`, `signer`: the members and their
//!   health, whom a drained site turns away, leadership transfer, and the
//!   signing of node info and tickets.

mod clock;
pub mod election_nudge;
pub mod events;
mod forwarding;
pub mod freshness;
mod gates;
mod leadership;
mod linearizable_reads;
mod local_reads;
mod members;
pub mod signer;
mod ticket_cache;
mod writes;

pub use clock::Clock;
pub use forwarding::FORWARD_BATCH_PROPOSALS_MAX;
pub use forwarding::FORWARDED_CALLS_SERVED_MAX;
pub use forwarding::WriteForwarder;
pub use leadership::Standing;
pub use leadership::TRANSFER_LEADER_DEADLINE;
pub use leadership::most_caught_up_voter;
pub use leadership::standing_of;
pub use leadership::transfer_leadership;

use std::time::Duration;
use std::time::Instant;

use openraft::async_runtime::watch::WatchReceiver;
use switchboard_api::ApiError;
use switchboard_raft_store::SiteNode;
use switchboard_raft_store::TypeConfig;
use switchboard_raft_store::ids::SiteId;
use switchboard_raft_store::store::ChangeFeed;
use switchboard_raft_store::store::SnapshotDir;
use switchboard_raft_store::store::StateMachineStore;
use switchboard_raft_store::store::StateReader;

use crate::leases::heartbeats::HeartbeatBatcher;
use crate::leases::table::Leases;
use crate::peer::clients::PeerClients;
use crate::services::auth::Authenticator;
use crate::site::freshness::LeaderContact;
use crate::site::signer::Signer;

/// The openraft instance of a site.
pub type SiteRaft = openraft::Raft<TypeConfig, StateMachineStore>;

/// Longest pause between two attempts of a write or read that waits for a
/// leader: short enough that failover is noticed at once, long enough not to
/// spin while an election runs.
pub const RETRY_PAUSE_MAX: Duration = Duration::from_millis(50);

/// Timing a site serves with.
#[derive(Clone, Debug)]
pub struct SiteSettings {
    /// How long a write may wait for a leader and a commit before the caller
    /// gets DEADLINE_EXCEEDED (and may retry with the same request id).
    pub write_deadline: Duration,
    /// How long a linearizable read may wait.
    pub read_deadline: Duration,
    /// The leader lease (openraft's: `election_timeout_max`). A leader that a
    /// quorum acknowledged within it reports zero staleness.
    pub leader_lease: Duration,
    /// How far apart the survivors' turns to ask for an election are when
    /// the leader falls silent (`election_nudge`): one heartbeat interval.
    pub election_nudge_spacing: Duration,
    /// The staleness a local read may have when its caller names no bound.
    pub local_read_stale_max: Duration,
    /// A relay without an acknowledged heartbeat for this long is down.
    pub relay_lease_ttl: Duration,
    /// How often a follower forwards the heartbeats it received.
    pub heartbeat_forward_interval: Duration,
    /// How long a connect ticket is valid.
    pub ticket_ttl: Duration,
    /// Pace of a drain that names none (maintenance windows), hosts per second.
    pub drain_hosts_per_second: u32,
    /// Longest an API call may take until its response starts.
    pub request_timeout: Duration,
    /// Longest maintenance window this site accepts.
    pub maintenance_window_ms_max: u64,
    /// Furthest ahead a maintenance window may start.
    pub maintenance_lead_ms_max: u64,
}

/// One running site.
pub struct Site {
    pub id: SiteId,
    pub name: String,
    pub cluster_id: String,
    /// Itself as it joins a cluster: name, advertised addresses, labels.
    pub own: SiteNode,
    pub raft: SiteRaft,
    pub reader: StateReader,
    pub snapshots: SnapshotDir,
    pub peers: PeerClients,
    pub contact: LeaderContact,
    pub settings: SiteSettings,
    pub auth: Authenticator,
    /// Caps on open watch streams.
    pub watch_slots: crate::services::watch_slots::WatchSlots,
    /// Route and node-info changes, for watches.
    pub feed: ChangeFeed,
    /// Node-info and ticket signing.
    pub signer: Signer,
    /// Relay leases (meaningful on the leader).
    pub leases: Leases,
    /// Heartbeats waiting to be forwarded to the leader.
    pub heartbeats: HeartbeatBatcher,
    /// Writes waiting to be forwarded to the leader.
    pub forwarder: WriteForwarder,
    /// Monotonic and wall time, for the lease keeper, the scheduler and
    /// the leader's stamp on proposals.
    pub clock: Clock,
    /// Recent events, for the operator's page.
    pub events: events::EventRing,
}

/// The machine's Unix time in milliseconds, for code that has no site
/// (token expiry, tickets); a site's own code reads `site.clock`.
pub fn unix_ms() -> u64 {
    clock::system_unix_ms()
}

/// The name of a Raft role, as status shows it.
pub fn role_name(state: openraft::ServerState) -> &'static str {
    match state {
        openraft::ServerState::Leader => "leader",
        openraft::ServerState::Follower => "follower",
        openraft::ServerState::Candidate => "candidate",
        openraft::ServerState::Learner => "learner",
        openraft::ServerState::Shutdown => "shutdown",
    }
}

/// Why one attempt failed, and whether another may succeed.
enum Attempt {
    Retry(String),
    Fail(ApiError),
}

impl Attempt {
    /// The error a caller that will not try again is given: UNAVAILABLE
    /// for what another try might fix.
    fn into_error(self) -> ApiError {
        match self {
            Attempt::Retry(reason) => ApiError::Unavailable(reason),
            Attempt::Fail(error) => error,
        }
    }
}

/// Where one attempt of a write or linearizable read goes.
enum Target {
    /// This site leads.
    Here,
    /// Another site leads.
    Leader(SiteId, SiteNode),
}

/// Why `until_answered` stopped without an answer.
enum Unanswered {
    /// An attempt failed in a way another will not fix.
    Failed(ApiError),
    /// The deadline passed; the last attempt's failure.
    Expired(String),
}

impl Site {
    /// The leader this site knows of, with its address.
    pub fn leader(&self) -> Option<(SiteId, SiteNode)> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        let leader = metrics.current_leader?;
        let node = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .cloned()?;
        Some((leader, node))
    }

    /// The current node info for a caller that has `known` (`None` when it
    /// is current, or when nothing is signed yet).
    pub fn node_info_if_newer(
        &self,
        known: Option<&switchboard_proto::v1::NodeInfoVersion>,
    ) -> Option<switchboard_proto::v1::SignedNodeInfo> {
        self.signer
            .node_info_if_newer(&self.reader.load().state, known)
    }

    /// Records relay heartbeats on the leader; anywhere else it is UNAVAILABLE.
    pub fn record_heartbeats(
        &self,
        heartbeats: &[switchboard_proto::v1::RelayHeartbeat],
    ) -> Result<u64, ApiError> {
        if !self.is_leader() {
            return Err(ApiError::Unavailable(format!(
                "site {} is not the leader",
                self.id
            )));
        }
        let now = self.clock.now();
        for heartbeat in heartbeats {
            let relay_id = switchboard_raft_store::ids::RelayId::new(heartbeat.relay_id.clone())?;
            self.leases.record(
                relay_id,
                heartbeat.incarnation,
                heartbeat.active_sessions,
                crate::leases::heartbeats::received_at(
                    now,
                    heartbeat.held_ms,
                    self.settings.relay_lease_ttl,
                ),
            );
        }
        metrics::counter!("switchboard_relay_heartbeats_recorded_total")
            .increment(heartbeats.len() as u64);
        Ok(self.settings.relay_lease_ttl.as_millis() as u64)
    }

    /// Whether this site leads.
    pub fn is_leader(&self) -> bool {
        self.leader().is_some_and(|(id, _)| id == self.id)
    }

    /// Runs `attempt` against whichever site leads, again after every
    /// retryable failure (leader changes, elections), until one answers,
    /// one fails for good, or `deadline` passes.
    async fn until_answered<T, F, Fut>(
        &self,
        deadline: Instant,
        mut attempt: F,
    ) -> Result<T, Unanswered>
    where
        F: FnMut(Target) -> Fut,
        Fut: std::future::Future<Output = Result<T, Attempt>>,
    {
        let mut last_failure: String;
        loop {
            let result = match self.leader() {
                Some((leader, _)) if leader == self.id => match self.refuse_if_cut_off_leader() {
                    Ok(()) => attempt(Target::Here).await,
                    Err(error) => Err(Attempt::Fail(error)),
                },
                Some((leader, node)) => attempt(Target::Leader(leader, node)).await,
                None => Err(Attempt::Retry(
                    "no leader known (election in progress?)".into(),
                )),
            };
            match result {
                Ok(value) => return Ok(value),
                Err(Attempt::Fail(error)) => return Err(Unanswered::Failed(error)),
                Err(Attempt::Retry(reason)) => last_failure = reason,
            }
            if Instant::now() >= deadline {
                return Err(Unanswered::Expired(last_failure));
            }
            self.pause_for_change(deadline).await;
        }
    }

    async fn pause_for_change(&self, deadline: Instant) {
        let mut metrics = self.raft.metrics();
        let pause = deadline
            .saturating_duration_since(Instant::now())
            .min(RETRY_PAUSE_MAX);
        let _ = tokio::time::timeout(pause, metrics.changed()).await;
    }
}
