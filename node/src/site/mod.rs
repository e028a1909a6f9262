//! The running site: what every service shares, and the paths every write
//! and read takes.
//!
//! Writes are accepted at any site. The leader stamps its clock into the
//! proposal and proposes it; a follower forwards it to the leader over the
//! raft port, retrying across elections until the write deadline. Reads are
//! served from this site's applied state, either as they are (with their
//! staleness) or after a read index from the leader (linearizable).

pub mod freshness;
mod leadership;
pub mod signer;

pub use leadership::TRANSFER_LEADER_DEADLINE;
pub use leadership::most_caught_up_voter;
pub use leadership::transfer_leadership;

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use std::time::SystemTime;

use openraft::ReadPolicy;
use openraft::async_runtime::watch::WatchReceiver;
use openraft::errors::ClientWriteError;
use openraft::errors::RaftError;
use openraft::raft::linearizable_read::Linearizer;
use openraft::raft::linearizable_read::ReadLogId;
use switchboard_proto::v1::ForwardWriteRequest;
use switchboard_proto::v1::ReadIndexRequest;
use switchboard_raft_store::Proposal;
use switchboard_raft_store::Reply;
use switchboard_raft_store::SiteNode;
use switchboard_raft_store::TypeConfig;
use switchboard_raft_store::ids::SiteId;
use switchboard_raft_store::reply::Outcome;
use switchboard_raft_store::store::AppliedState;
use switchboard_raft_store::store::SnapshotDir;
use switchboard_raft_store::store::StateMachineStore;
use switchboard_raft_store::store::StateReader;
use switchboard_raft_store::types::LogId;
use switchboard_raft_store::wire;
use tonic::Code;

use crate::leases::heartbeats::HeartbeatBatcher;
use crate::leases::table::Leases;
use crate::peer::clients::PeerClients;
use crate::services::auth::Authenticator;
use crate::site::freshness::LeaderContact;
use crate::site::signer::Signer;
use switchboard_api::ApiError;
use switchboard_raft_store::store::ChangeFeed;

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
    /// A relay without an acknowledged heartbeat for this long is down.
    pub relay_lease_ttl: Duration,
    /// How often a follower forwards the heartbeats it received.
    pub heartbeat_forward_interval: Duration,
    /// How long a connect ticket is valid.
    pub ticket_ttl: Duration,
    /// Pace of a drain that names none (maintenance windows), hosts per second.
    pub drain_hosts_per_second: u32,
}

/// One running site.
pub struct Site {
    pub id: SiteId,
    pub name: String,
    pub cluster_id: String,
    pub raft: SiteRaft,
    pub reader: StateReader,
    pub snapshots: SnapshotDir,
    pub peers: PeerClients,
    pub contact: LeaderContact,
    pub settings: SiteSettings,
    pub auth: Authenticator,
    /// Route and node-info changes, for watches.
    pub feed: ChangeFeed,
    /// Node-info and ticket signing.
    pub signer: Signer,
    /// Relay leases (meaningful on the leader).
    pub leases: Leases,
    /// Heartbeats waiting to be forwarded to the leader.
    pub heartbeats: HeartbeatBatcher,
}

/// The current Unix time in milliseconds: the leader's stamp on a proposal.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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

/// One member of the cluster as this site sees it.
#[derive(Clone, Debug)]
pub struct MemberInfo {
    pub site_id: SiteId,
    pub node: SiteNode,
    pub voter: bool,
    /// The last log index known replicated to it (on the leader only).
    pub matched_index: Option<u64>,
    /// On the leader only: whether it acknowledged the leader within twice
    /// the leader lease (the leader itself always is).
    pub healthy: Option<bool>,
    /// Taken out of client service.
    pub draining: bool,
}

pub use switchboard_api::headers::REDIRECT_HEADER;

/// Turns a refusal into an error and passes every other reply through.
pub fn accepted(reply: Reply) -> Result<Reply, ApiError> {
    match reply.outcome {
        Outcome::Refused(refusal) => Err(refusal.into()),
        _ => Ok(reply),
    }
}

/// Why one attempt failed, and whether another may succeed.
enum Attempt {
    Retry(String),
    Fail(ApiError),
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

    /// Every member in this site's membership config, in id order.
    pub fn members(&self) -> Vec<MemberInfo> {
        use openraft::Instant as _;
        let applied = self.reader.load();
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        let membership = metrics.membership_config.membership();
        let voters: Vec<SiteId> = membership.voter_ids().collect();
        let is_leader = metrics.current_leader == Some(self.id);
        let health_window = self.settings.leader_lease * 2;
        membership
            .nodes()
            .map(|(id, node)| MemberInfo {
                site_id: *id,
                node: node.clone(),
                voter: voters.contains(id),
                matched_index: metrics
                    .replication
                    .as_ref()
                    .and_then(|replication| replication.get(id).cloned())
                    .map(|matched| matched.map_or(0, |log_id| log_id.index)),
                healthy: is_leader.then(|| {
                    *id == self.id
                        || metrics
                            .heartbeat
                            .as_ref()
                            .and_then(|acks| acks.get(id).cloned().flatten())
                            .is_some_and(|at| at.elapsed() < health_window)
                }),
                draining: applied
                    .state
                    .sites()
                    .any(|(site, record)| site == id && record.draining),
            })
            .collect()
    }

    /// Voters and, as the leader sees it, the healthy ones.
    pub fn voter_health(
        &self,
    ) -> (
        std::collections::BTreeSet<SiteId>,
        std::collections::BTreeSet<SiteId>,
    ) {
        let members = self.members();
        let voters = members
            .iter()
            .filter(|m| m.voter)
            .map(|m| m.site_id)
            .collect();
        let healthy = members
            .iter()
            .filter(|m| m.healthy == Some(true))
            .map(|m| m.site_id)
            .collect();
        (voters, healthy)
    }

    /// Whether this site is drained out of client service.
    pub fn is_draining(&self) -> bool {
        self.reader
            .load()
            .state
            .sites()
            .any(|(id, site)| *id == self.id && site.draining)
    }

    /// Sends callers elsewhere while this site is drained: UNAVAILABLE with
    /// the address of a site in service.
    pub fn refuse_if_draining(&self) -> Result<(), tonic::Status> {
        if !self.is_draining() {
            return Ok(());
        }
        let mut status = tonic::Status::unavailable(format!(
            "site {} is drained for maintenance; use another site",
            self.id
        ));
        let elsewhere = self
            .reader
            .load()
            .state
            .sites()
            .find(|(id, site)| **id != self.id && !site.draining)
            .map(|(_, site)| site.api_addr.clone());
        if let Some(addr) = elsewhere
            && let Ok(value) = tonic::metadata::MetadataValue::try_from(addr.as_str())
        {
            status.metadata_mut().insert(REDIRECT_HEADER, value);
        }
        Err(status)
    }

    /// Refuses a relay that was removed: its certificate stays valid as a
    /// certificate, but the cluster no longer accepts it.
    pub fn refuse_removed_relay(
        &self,
        principal: &crate::services::auth::Principal,
    ) -> Result<(), ApiError> {
        if let crate::services::auth::Principal::Relay(relay_id) = principal
            && self.reader.load().state.is_removed_relay(relay_id)
        {
            return Err(ApiError::PermissionDenied(format!(
                "relay {relay_id} was removed from the cluster; its certificate is refused"
            )));
        }
        Ok(())
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
        let now = Instant::now();
        for heartbeat in heartbeats {
            let relay_id = switchboard_raft_store::ids::RelayId::new(heartbeat.relay_id.clone())?;
            self.leases.record(
                relay_id,
                heartbeat.incarnation,
                heartbeat.active_sessions,
                now,
            );
        }
        metrics::counter!("switchboard_relay_heartbeats_recorded_total")
            .increment(heartbeats.len() as u64);
        Ok(self.settings.relay_lease_ttl.as_millis() as u64)
    }

    /// Proposes a new node-info signing key (the first, or the next one
    /// endorsed by the current). Only the leader may.
    pub async fn propose_signing_key(
        &self,
        actor: switchboard_raft_store::Actor,
    ) -> Result<Reply, ApiError> {
        let key = self
            .signer
            .new_key(&self.reader.load().state, &self.cluster_id)?;
        let proposal = Proposal::new(
            switchboard_raft_store::ids::RequestId::NONE,
            actor,
            switchboard_raft_store::Command::AddSigningKey(key),
        );
        self.propose_as_leader(proposal).await.and_then(accepted)
    }

    /// Whether this site leads.
    pub fn is_leader(&self) -> bool {
        self.leader().is_some_and(|(id, _)| id == self.id)
    }

    async fn pause_for_change(&self, deadline: Instant) {
        let mut metrics = self.raft.metrics();
        let pause = deadline
            .saturating_duration_since(Instant::now())
            .min(RETRY_PAUSE_MAX);
        let _ = tokio::time::timeout(pause, metrics.changed()).await;
    }

    /// Proposes a command from any site: here if this site leads, else
    /// forwarded to the leader, retried across leader changes until the
    /// write deadline. Refusals come back as errors.
    pub async fn propose(&self, proposal: Proposal) -> Result<Reply, ApiError> {
        proposal.command.validate()?;
        let deadline = Instant::now() + self.settings.write_deadline;
        let mut last_failure: String;
        loop {
            let attempt = match self.leader() {
                Some((leader, _)) if leader == self.id => {
                    self.propose_here(proposal.clone(), deadline).await
                }
                Some((leader, node)) => {
                    self.forward_write(leader, &node, &proposal, deadline).await
                }
                None => Err(Attempt::Retry(
                    "no leader known (election in progress?)".into(),
                )),
            };
            match attempt {
                Ok(reply) => return accepted(reply),
                Err(Attempt::Fail(error)) => return Err(error),
                Err(Attempt::Retry(reason)) => last_failure = reason,
            }
            if Instant::now() >= deadline {
                return Err(ApiError::DeadlineExceeded(format!(
                    "write not confirmed within {} ms ({last_failure}); its outcome is unknown, retry with the same request id",
                    self.settings.write_deadline.as_millis()
                )));
            }
            self.pause_for_change(deadline).await;
        }
    }

    /// Proposes on this site as the leader; used for forwarded writes too.
    /// A site that no longer leads answers UNAVAILABLE so the sender retries.
    pub async fn propose_as_leader(&self, proposal: Proposal) -> Result<Reply, ApiError> {
        let deadline = Instant::now() + self.settings.write_deadline;
        match self.propose_here(proposal, deadline).await {
            Ok(reply) => Ok(reply),
            Err(Attempt::Fail(error)) => Err(error),
            Err(Attempt::Retry(reason)) => Err(ApiError::Unavailable(reason)),
        }
    }

    async fn propose_here(
        &self,
        mut proposal: Proposal,
        deadline: Instant,
    ) -> Result<Reply, Attempt> {
        proposal.issued_at_ms = unix_ms();
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, self.raft.client_write(proposal)).await {
            Ok(Ok(response)) => Ok(response.data),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                Err(Attempt::Retry(format!(
                    "site {} is not the leader (leader: {:?})",
                    self.id, forward.leader_id
                )))
            }
            Ok(Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)))) => Err(
                Attempt::Retry("the entry was discarded by a leader change".into()),
            ),
            Ok(Err(RaftError::APIError(other))) => {
                Err(Attempt::Fail(ApiError::Internal(other.to_string())))
            }
            Ok(Err(RaftError::Fatal(fatal))) => Err(Attempt::Fail(ApiError::Unavailable(format!(
                "site stopping: {fatal}"
            )))),
            Err(_) => Err(Attempt::Retry("not committed before the deadline".into())),
        }
    }

    async fn forward_write(
        &self,
        leader: SiteId,
        node: &SiteNode,
        proposal: &Proposal,
        deadline: Instant,
    ) -> Result<Reply, Attempt> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut client = self
            .peers
            .raft_client(leader, &node.raft_addr)
            .map_err(|e| Attempt::Retry(e.to_string()))?;
        let request = self.peers.request(
            leader,
            ForwardWriteRequest {
                proposal: proposal.encode(),
            },
            Some(remaining),
        );
        match client.forward_write(request).await {
            Ok(response) => {
                let reply: Reply = wire::decode("forwarded reply", &response.into_inner().reply)
                    .map_err(|e| Attempt::Fail(ApiError::Internal(e.to_string())))?;
                Ok(reply)
            }
            Err(status) => match status.code() {
                Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Cancelled
                | Code::Unknown
                | Code::Aborted => Err(Attempt::Retry(format!(
                    "leader {leader}: {}",
                    status.message()
                ))),
                Code::InvalidArgument => Err(Attempt::Fail(ApiError::InvalidArgument(
                    status.message().into(),
                ))),
                _ => Err(Attempt::Fail(ApiError::Internal(format!(
                    "leader {leader}: {}",
                    status.message()
                )))),
            },
        }
    }

    /// Staleness of this site's applied state: zero on a leader a quorum
    /// acknowledged within its lease; else the time since it last heard from
    /// a leader whose commit index it had applied. `None`: never heard.
    pub fn staleness_ms(&self) -> Option<u64> {
        let applied = self.reader.load().applied_index();
        let (is_leader, since_quorum_ack) = {
            use openraft::Instant as _;
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow_watched();
            let since = metrics
                .last_quorum_acked
                .as_ref()
                .map(|at| at.elapsed().as_millis() as u64);
            (metrics.current_leader == Some(self.id), since)
        };
        if is_leader && let Some(since) = since_quorum_ack {
            let lease = self.settings.leader_lease.as_millis() as u64;
            return Some(if since <= lease { 0 } else { since });
        }
        self.contact.staleness_ms(applied)
    }

    /// The applied state as it is here, if no staler than `max_stale_ms`
    /// (0: any staleness). Returns the state and its staleness.
    pub fn read_local(&self, max_stale_ms: u64) -> Result<(Arc<AppliedState>, u64), ApiError> {
        let state = self.reader.load();
        let staleness = self.staleness_ms();
        match staleness {
            Some(staleness) if max_stale_ms == 0 || staleness <= max_stale_ms => {
                Ok((state, staleness))
            }
            Some(staleness) => Err(ApiError::Unavailable(format!(
                "site {} is {staleness} ms stale, over the {max_stale_ms} ms asked for; try another site",
                self.id
            ))),
            None if max_stale_ms == 0 => Ok((state, u64::MAX)),
            None => Err(ApiError::Unavailable(format!(
                "site {} has not heard from a leader yet",
                self.id
            ))),
        }
    }

    /// The applied state once it includes every write acknowledged before
    /// this call (read index through the leader), retried across elections
    /// until the read deadline.
    pub async fn read_linearizable(&self, lease_read: bool) -> Result<Arc<AppliedState>, ApiError> {
        let deadline = Instant::now() + self.settings.read_deadline;
        let mut last_failure: String;
        loop {
            let attempt = match self.leader() {
                Some((leader, _)) if leader == self.id => self.read_index_here(lease_read).await,
                Some((leader, node)) => {
                    self.read_index_from(leader, &node, lease_read, deadline)
                        .await
                }
                None => Err(Attempt::Retry(
                    "no leader known (election in progress?)".into(),
                )),
            };
            match attempt {
                Ok(read_log_id) => return self.await_applied(read_log_id, deadline).await,
                Err(Attempt::Fail(error)) => return Err(error),
                Err(Attempt::Retry(reason)) => last_failure = reason,
            }
            if Instant::now() >= deadline {
                return Err(ApiError::Unavailable(format!(
                    "no linearizable read within {} ms: {last_failure}",
                    self.settings.read_deadline.as_millis()
                )));
            }
            self.pause_for_change(deadline).await;
        }
    }

    /// The read index on this site as the leader (also serves followers).
    async fn read_index_here(&self, lease_read: bool) -> Result<LogId, Attempt> {
        let policy = if lease_read {
            ReadPolicy::LeaseRead
        } else {
            ReadPolicy::ReadIndex
        };
        match self.raft.get_read_linearizer(policy).await {
            Ok(linearizer) => Ok(*linearizer.read_log_id().log_id()),
            Err(RaftError::APIError(error)) => Err(Attempt::Retry(error.to_string())),
            Err(RaftError::Fatal(fatal)) => Err(Attempt::Fail(ApiError::Unavailable(format!(
                "site stopping: {fatal}"
            )))),
        }
    }

    /// The read index for the peer service, as an error a follower can act on.
    pub async fn read_index_for_peer(&self, lease_read: bool) -> Result<LogId, ApiError> {
        self.read_index_here(lease_read)
            .await
            .map_err(|attempt| match attempt {
                Attempt::Retry(reason) => ApiError::Unavailable(reason),
                Attempt::Fail(error) => error,
            })
    }

    async fn read_index_from(
        &self,
        leader: SiteId,
        node: &SiteNode,
        lease_read: bool,
        deadline: Instant,
    ) -> Result<LogId, Attempt> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut client = self
            .peers
            .raft_client(leader, &node.raft_addr)
            .map_err(|e| Attempt::Retry(e.to_string()))?;
        let request = self
            .peers
            .request(leader, ReadIndexRequest { lease_read }, Some(remaining));
        match client.read_index(request).await {
            Ok(response) => wire::decode("read log id", &response.into_inner().read_log_id)
                .map_err(|e| Attempt::Fail(ApiError::Internal(e.to_string()))),
            Err(status) => Err(Attempt::Retry(format!(
                "leader {leader}: {}",
                status.message()
            ))),
        }
    }

    async fn await_applied(
        &self,
        read_log_id: LogId,
        deadline: Instant,
    ) -> Result<Arc<AppliedState>, ApiError> {
        let applied = self.reader.load().last_applied;
        let linearizer = Linearizer::new(self.id, ReadLogId::from_log_id(read_log_id), applied);
        let remaining = deadline.saturating_duration_since(Instant::now());
        match linearizer
            .try_await_ready(&self.raft, Some(remaining))
            .await
        {
            Ok(Ok(_)) => Ok(self.reader.load()),
            Ok(Err(state)) => Err(ApiError::Unavailable(format!(
                "site {} did not apply up to {} in time (applied {:?})",
                self.id,
                state.read_log_id(),
                state.applied()
            ))),
            Err(fatal) => Err(ApiError::Unavailable(format!("site stopping: {fatal}"))),
        }
    }
}
