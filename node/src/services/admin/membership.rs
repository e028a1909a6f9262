//! Status, cluster initialization, membership changes and leader transfer.
//!
//! Membership and leadership changes run on the leader. A follower answers
//! UNAVAILABLE with the leader's API address in the `x-switchboard-leader`
//! metadata, and the client library retries there with the caller's own
//! credentials.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use openraft::ChangeMembers;
use openraft::errors::ClientWriteError;
use openraft::errors::InitializeError;
use openraft::errors::RaftError;
use switchboard_api::ApiError;
use switchboard_api::convert;
use switchboard_proto::v1 as pb;
use switchboard_raft_store::SiteNode;
use switchboard_raft_store::safety::Step;
use switchboard_raft_store::state::WindowStatus;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::AdminApi;
use super::maintenance::window;
use crate::services::auth::Principal;
use crate::site::TRANSFER_LEADER_DEADLINE;
use crate::site::most_caught_up_voter;
use crate::site::role_name;
use crate::site::transfer_leadership;
use openraft::async_runtime::watch::WatchReceiver;

impl AdminApi {
    pub(super) async fn status(
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
                maintenance: Vec::new(),
                node_info_era: 0,
                node_info_epoch: 0,
                notice: String::new(),
                relay_count: applied.state.relays().count() as u64,
                route_count: applied.state.routes().len() as u64,
                version: env!("CARGO_PKG_VERSION").into(),
                own: Some(pb::SiteEndpoints {
                    site_id: self.site.id,
                    name: self.site.own.name.clone(),
                    raft_addr: self.site.own.raft_addr.clone(),
                    api_addr: self.site.own.api_addr.clone(),
                    http_addr: self.site.own.http_addr.clone(),
                    labels: self.site.own.labels.clone().into_iter().collect(),
                }),
            }
        };
        let staleness_ms = self.site.staleness_ms().unwrap_or(u64::MAX);
        let node_info = applied.state.node_info();
        Ok(Response::new(pb::StatusResponse {
            members: self.members(),
            staleness_ms,
            // Open windows only; `ListMaintenance` shows the finished ones.
            maintenance: applied
                .state
                .windows()
                .filter(|w| matches!(w.status, WindowStatus::Scheduled | WindowStatus::Active))
                .map(window)
                .collect(),
            node_info_era: node_info.era,
            node_info_epoch: node_info.epoch,
            notice: node_info.notice.clone(),
            ..response
        }))
    }

    pub(super) async fn initialize_cluster(
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

    pub(super) async fn add_learner(
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

    pub(super) async fn promote_voter(
        &self,
        request: Request<pb::PromoteVoterRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        self.require_leader()?;
        let message = request.get_ref();
        let id = message.site_id;
        self.check_safety(Step::PromoteLearner(id), message.force)?;
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        self.change_membership(&principal, format!("promote site {id} to voter"), change)
            .await
    }

    pub(super) async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        self.require_leader()?;
        let id = request.get_ref().site_id;
        let force = request.get_ref().force;
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
            self.check_safety(Step::RemoveVoter(id), force)?;
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.change_membership(&principal, format!("remove site {id}"), change)
            .await
    }

    pub(super) async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        self.require_leader()?;
        let requested = request.get_ref().to_site_id;
        let force = request.get_ref().force;
        let target = if requested != 0 {
            requested
        } else {
            most_caught_up_voter(&self.site).ok_or_else(|| {
                ApiError::FailedPrecondition("no other voter to hand leadership to".into())
            })?
        };
        self.check_safety(Step::TransferLeader(target), force)?;
        let result = transfer_leadership(&self.site, target, TRANSFER_LEADER_DEADLINE).await;
        let recorded = result
            .as_ref()
            .map(|_| ())
            .map_err(|e| Status::from(ApiError::Internal(e.to_string())));
        self.audit(
            &principal,
            format!("hand leadership to site {target}"),
            &recorded,
        )
        .await;
        result?;
        Ok(Response::new(pb::TransferLeaderResponse {
            new_leader_id: target,
        }))
    }

    /// Changes the membership, records it in the audit log, and answers
    /// with the members as they are now.
    pub(super) async fn change_membership(
        &self,
        principal: &Principal,
        action: String,
        change: ChangeMembers<u64, switchboard_raft_store::SiteNode>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let result = self
            .site
            .raft
            .change_membership(change, false)
            .await
            .map_err(membership_error);
        self.audit(principal, action, &result).await;
        Ok(Response::new(
            self.membership_response(result?.log_id.index),
        ))
    }
}

pub(super) fn membership_error(
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
