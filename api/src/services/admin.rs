//! The admin service: status, cluster initialization, membership and
//! leader transfer.
//!
//! Membership and leadership changes run on the leader. A follower answers
//! UNAVAILABLE with the leader's API address in the `x-switchboard-leader`
//! metadata, and the client library retries there with the caller's own
//! credentials.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use openraft::ChangeMembers;
use openraft::async_runtime::watch::WatchReceiver;
use openraft::errors::ClientWriteError;
use openraft::errors::InitializeError;
use openraft::errors::RaftError;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::admin_service_server::AdminService;
use switchboard_raft_store::SiteNode;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::convert;
use crate::error::ApiError;
use crate::services::request_id;
use crate::site::Site;
use crate::site::role_name;
use crate::token::TOKEN_TTL_MAX_SECS;
use crate::token::TokenRole;
use switchboard_raft_store::Command;
use switchboard_raft_store::Proposal;

/// Metadata key on a follower's UNAVAILABLE: the leader's API address.
pub const LEADER_HINT_HEADER: &str = "x-switchboard-leader";

/// How long a leader transfer may take: the target must catch up, time out
/// the old lease and win an election.
pub const TRANSFER_LEADER_DEADLINE: Duration = Duration::from_secs(10);

pub struct AdminApi {
    site: Arc<Site>,
}

impl AdminApi {
    pub fn new(site: Arc<Site>) -> Self {
        AdminApi { site }
    }

    /// Refuses a leader-only call on a follower, naming the leader.
    fn require_leader(&self) -> Result<(), Status> {
        match self.site.leader() {
            Some((leader, _)) if leader == self.site.id => Ok(()),
            Some((leader, node)) => {
                let mut status = Status::unavailable(format!(
                    "site {} is not the leader; site {leader} at {} is",
                    self.site.id, node.api_addr
                ));
                if let Ok(value) = MetadataValue::try_from(node.api_addr.as_str()) {
                    status.metadata_mut().insert(LEADER_HINT_HEADER, value);
                }
                Err(status)
            }
            None => Err(Status::unavailable(
                "no leader known (election in progress?)",
            )),
        }
    }

    fn members(&self) -> Vec<pb::Member> {
        self.site
            .members()
            .into_iter()
            .map(|member| pb::Member {
                site_id: member.site_id,
                name: member.node.name,
                raft_addr: member.node.raft_addr,
                api_addr: member.node.api_addr,
                http_addr: member.node.http_addr,
                voter: member.voter,
                labels: member.node.labels.into_iter().collect(),
                matched_index: member.matched_index,
            })
            .collect()
    }

    fn node_info_response(&self, reply: &switchboard_raft_store::Reply) -> pb::NodeInfoResponse {
        let (era, epoch) = match reply.outcome {
            switchboard_raft_store::Outcome::NodeInfo { era, epoch } => (era, epoch),
            _ => self.site.reader.load().state.node_info().version(),
        };
        pb::NodeInfoResponse {
            node_info: None,
            current: Some(pb::NodeInfoVersion { era, epoch }),
        }
    }

    fn membership_response(&self, log_index: u64) -> pb::MembershipResponse {
        pb::MembershipResponse {
            members: self.members(),
            log_index,
        }
    }
}

fn membership_error(
    error: RaftError<
        switchboard_raft_store::TypeConfig,
        ClientWriteError<switchboard_raft_store::TypeConfig>,
    >,
) -> Status {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            Status::unavailable(error.to_string())
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            Status::failed_precondition(e.to_string())
        }
        RaftError::APIError(e) => Status::failed_precondition(e.to_string()),
        RaftError::Fatal(e) => Status::unavailable(format!("site stopping: {e}")),
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        self.site.auth.admin(&request)?;
        let applied = self.site.reader.load();
        let response = {
            let metrics = self.site.raft.metrics();
            let metrics = metrics.borrow_watched();
            pb::StatusResponse {
                cluster_id: self.site.cluster_id.clone(),
                site_id: self.site.id,
                name: self.site.name.clone(),
                role: role_name(metrics.state).into(),
                leader_id: metrics.current_leader.unwrap_or(0),
                term: metrics.current_term,
                last_log_index: metrics.last_log_index.unwrap_or(0),
                commit_index: metrics.local_committed.as_ref().map_or(0, |id| id.index),
                applied_index: metrics.last_applied.as_ref().map_or(0, |id| id.index),
                snapshot_index: metrics.snapshot.as_ref().map_or(0, |id| id.index),
                purged_index: metrics.purged.as_ref().map_or(0, |id| id.index),
                members: Vec::new(),
                staleness_ms: 0,
                relay_count: applied.state.relays().count() as u64,
                route_count: applied.state.routes().len() as u64,
                version: env!("CARGO_PKG_VERSION").into(),
            }
        };
        let staleness_ms = self.site.staleness_ms().unwrap_or(u64::MAX);
        Ok(Response::new(pb::StatusResponse {
            members: self.members(),
            staleness_ms,
            ..response
        }))
    }

    async fn initialize_cluster(
        &self,
        request: Request<pb::InitializeClusterRequest>,
    ) -> Result<Response<pb::InitializeClusterResponse>, Status> {
        self.site.auth.admin(&request)?;
        let voters = &request.get_ref().voters;
        if voters.is_empty() {
            return Err(ApiError::InvalidArgument("at least one voter is needed".into()).into());
        }
        let mut members: BTreeMap<u64, SiteNode> = BTreeMap::new();
        for site in voters {
            let (id, node) = convert::site_node(site)?;
            if members.insert(id, node).is_some() {
                return Err(ApiError::InvalidArgument(format!("site {id} is listed twice")).into());
            }
        }
        if !members.contains_key(&self.site.id) {
            return Err(ApiError::InvalidArgument(format!(
                "this site ({}) is not among the voters",
                self.site.id
            ))
            .into());
        }
        match self.site.raft.initialize(members).await {
            Ok(()) => Ok(Response::new(pb::InitializeClusterResponse {})),
            Err(RaftError::APIError(InitializeError::NotAllowed(e))) => Err(
                Status::failed_precondition(format!("cluster already initialized: {e}")),
            ),
            Err(e) => Err(Status::failed_precondition(e.to_string())),
        }
    }

    async fn add_learner(
        &self,
        request: Request<pb::AddLearnerRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.site.auth.admin(&request)?;
        self.require_leader()?;
        let message = request.get_ref();
        let site = message
            .site
            .as_ref()
            .ok_or_else(|| ApiError::InvalidArgument("site is required".into()))?;
        let (id, node) = convert::site_node(site)?;
        let known = {
            let metrics = self.site.raft.metrics();
            let metrics = metrics.borrow_watched();
            metrics
                .membership_config
                .membership()
                .get_node(&id)
                .cloned()
        };
        if let Some(existing) = known
            && existing != node
        {
            return Err(ApiError::FailedPrecondition(format!(
                "site {id} is already a member with other endpoints"
            ))
            .into());
        }
        // Not blocking: catching up can take minutes; callers watch progress in Status.
        let response = self
            .site
            .raft
            .add_learner(id, node, false)
            .await
            .map_err(membership_error)?;
        Ok(Response::new(
            self.membership_response(response.log_id.index),
        ))
    }

    async fn promote_voter(
        &self,
        request: Request<pb::PromoteVoterRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.site.auth.admin(&request)?;
        self.require_leader()?;
        let id = request.get_ref().site_id;
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        let response = self
            .site
            .raft
            .change_membership(change, false)
            .await
            .map_err(membership_error)?;
        Ok(Response::new(
            self.membership_response(response.log_id.index),
        ))
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.site.auth.admin(&request)?;
        self.require_leader()?;
        let id = request.get_ref().site_id;
        let (is_voter, is_member) = {
            let metrics = self.site.raft.metrics();
            let metrics = metrics.borrow_watched();
            let membership = metrics.membership_config.membership();
            (
                membership.voter_ids().any(|v| v == id),
                membership.get_node(&id).is_some(),
            )
        };
        if !is_member {
            return Err(ApiError::NotFound(format!("site {id} is not a member")).into());
        }
        let change = if is_voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        let response = self
            .site
            .raft
            .change_membership(change, false)
            .await
            .map_err(membership_error)?;
        Ok(Response::new(
            self.membership_response(response.log_id.index),
        ))
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        self.site.auth.admin(&request)?;
        self.require_leader()?;
        let requested = request.get_ref().to_site_id;
        let target = if requested != 0 {
            requested
        } else {
            most_caught_up_voter(&self.site).ok_or_else(|| {
                ApiError::FailedPrecondition("no other voter to hand leadership to".into())
            })?
        };
        transfer_leadership(&self.site, target, TRANSFER_LEADER_DEADLINE).await?;
        Ok(Response::new(pb::TransferLeaderResponse {
            new_leader_id: target,
        }))
    }

    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let role = match pb::TokenRole::try_from(message.role) {
            Ok(pb::TokenRole::Host) => {
                convert::host_id(&message.subject)?;
                TokenRole::Host
            }
            Ok(pb::TokenRole::Client) => {
                switchboard_raft_store::ids::RelayId::new(message.subject.clone()).map_err(
                    |_| {
                        ApiError::InvalidArgument(
                            "a client name is one DNS label (a-z, 0-9, '-')".into(),
                        )
                    },
                )?;
                TokenRole::Client
            }
            _ => {
                return Err(ApiError::InvalidArgument("role must be host or client".into()).into());
            }
        };
        if message.ttl_secs == 0 || message.ttl_secs > TOKEN_TTL_MAX_SECS {
            return Err(ApiError::InvalidArgument(format!(
                "ttl_secs must be 1 to {TOKEN_TTL_MAX_SECS}"
            ))
            .into());
        }
        let (token, expires_at_ms) =
            self.site
                .auth
                .issue_token(role, &message.subject, message.ttl_secs)?;
        Ok(Response::new(pb::IssueTokenResponse {
            token,
            expires_at_unix_ms: expires_at_ms,
        }))
    }

    async fn remove_relay(
        &self,
        request: Request<pb::RemoveRelayRequest>,
    ) -> Result<Response<pb::RemoveRelayResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let command = Command::RemoveRelay {
            relay_id: convert::relay_id(&message.relay_id)?,
        };
        let proposal = Proposal::new(request_id(&message.request_id)?, principal.actor(), command);
        let reply = self.site.propose(proposal).await?;
        Ok(Response::new(pb::RemoveRelayResponse {
            applied_index: reply.log_index,
        }))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::NodeInfoResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        self.require_leader()?;
        let reply = self.site.propose_signing_key(principal.actor()).await?;
        Ok(Response::new(self.node_info_response(&reply)))
    }

    async fn set_notice(
        &self,
        request: Request<pb::SetNoticeRequest>,
    ) -> Result<Response<pb::NodeInfoResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let command = Command::SetNotice {
            text: message.text.clone(),
        };
        let proposal = Proposal::new(request_id(&message.request_id)?, principal.actor(), command);
        let reply = self.site.propose(proposal).await?;
        Ok(Response::new(self.node_info_response(&reply)))
    }
}

/// The other voter with the longest replicated log, as the leader sees it.
pub fn most_caught_up_voter(site: &Site) -> Option<u64> {
    let metrics = site.raft.metrics();
    let metrics = metrics.borrow_watched();
    let voters: Vec<u64> = metrics
        .membership_config
        .membership()
        .voter_ids()
        .filter(|id| *id != site.id)
        .collect();
    let replication = metrics.replication.as_ref();
    voters.into_iter().max_by_key(|id| {
        let matched = replication
            .and_then(|r| r.get(id).cloned())
            .flatten()
            .map_or(0, |log_id| log_id.index);
        (matched, std::cmp::Reverse(*id))
    })
}

/// Asks openraft to hand leadership to `target` and waits until it leads.
pub async fn transfer_leadership(
    site: &Site,
    target: u64,
    deadline: Duration,
) -> Result<(), ApiError> {
    let voters: BTreeSet<u64> = {
        let metrics = site.raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics.membership_config.membership().voter_ids().collect()
    };
    if !voters.contains(&target) {
        return Err(ApiError::FailedPrecondition(format!(
            "site {target} is not a voter"
        )));
    }
    if target == site.id {
        return Ok(());
    }
    site.raft
        .trigger()
        .transfer_leader(target)
        .await
        .map_err(|e| ApiError::Unavailable(format!("site stopping: {e}")))?;
    let until = Instant::now() + deadline;
    let mut metrics = site.raft.metrics();
    loop {
        if metrics.borrow_watched().current_leader == Some(target) {
            return Ok(());
        }
        let remaining = until.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(ApiError::DeadlineExceeded(format!(
                "site {target} did not take over within {} ms",
                deadline.as_millis()
            )));
        }
        let _ = tokio::time::timeout(remaining, metrics.changed()).await;
    }
}
