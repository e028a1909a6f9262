//! The admin service. This file holds what every admin call shares (the
//! leader check, the audit record, the safety rule) and the gRPC trait,
//! whose methods hand each call to the method of the same name in the file
//! of its subject: `membership`, `tokens`, `relays`, `sites`, `node_info`,
//! `maintenance`, `backup`, `audit`.

mod audit;
mod backup;
mod maintenance;
mod membership;
mod node_info;
mod relays;
mod sites;
mod tokens;

use std::sync::Arc;

use switchboard_proto::v1 as pb;
use switchboard_proto::v1::admin_service_server::AdminService;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::services::auth::Principal;
use crate::site::Site;
use switchboard_api::headers::LEADER_HINT_HEADER;
use switchboard_raft_store::Request as WriteRequest;
use switchboard_raft_store::ids::RequestId;
use switchboard_raft_store::safety::Step;
use switchboard_raft_store::safety::check_step;
use tokio_stream::wrappers::ReceiverStream;

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
                draining: member.draining,
                healthy: member.healthy,
            })
            .collect()
    }

    /// Refuses an unsafe step (see `safety`) unless forced.
    fn check_safety(&self, step: Step, force: bool) -> Result<(), Status> {
        if force {
            return Ok(());
        }
        let (voters, healthy) = self.site.voter_health();
        check_step(&voters, &healthy, step).map_err(Status::failed_precondition)
    }

    /// Records an admin action that is not a command (best effort: the
    /// action happened whether or not its record does).
    async fn audit<T, E: std::fmt::Display>(
        &self,
        principal: &Principal,
        action: String,
        result: &Result<T, E>,
    ) {
        let result = match result {
            Ok(_) => "ok".to_owned(),
            Err(error) => format!("failed: {error}").chars().take(200).collect(),
        };
        let request = WriteRequest::record_audit(action, result);
        let written = self
            .site
            .write(RequestId::NONE, principal.actor(), request)
            .await;
        if let Err(error) = written {
            tracing::warn!(%error, "could not record an admin action in the audit log");
        }
    }

    fn membership_response(&self, log_index: u64) -> pb::MembershipResponse {
        pb::MembershipResponse {
            members: self.members(),
            log_index,
        }
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        AdminApi::status(self, request).await
    }

    async fn initialize_cluster(
        &self,
        request: Request<pb::InitializeClusterRequest>,
    ) -> Result<Response<pb::InitializeClusterResponse>, Status> {
        AdminApi::initialize_cluster(self, request).await
    }

    async fn add_learner(
        &self,
        request: Request<pb::AddLearnerRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        AdminApi::add_learner(self, request).await
    }

    async fn promote_voter(
        &self,
        request: Request<pb::PromoteVoterRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        AdminApi::promote_voter(self, request).await
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        AdminApi::remove_member(self, request).await
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        AdminApi::transfer_leader(self, request).await
    }

    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        AdminApi::issue_token(self, request).await
    }

    async fn remove_relay(
        &self,
        request: Request<pb::RemoveRelayRequest>,
    ) -> Result<Response<pb::RemoveRelayResponse>, Status> {
        AdminApi::remove_relay(self, request).await
    }

    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::NodeInfoResponse>, Status> {
        AdminApi::rotate_signing_key(self, request).await
    }

    async fn set_notice(
        &self,
        request: Request<pb::SetNoticeRequest>,
    ) -> Result<Response<pb::NodeInfoResponse>, Status> {
        AdminApi::set_notice(self, request).await
    }

    async fn drain_relay(
        &self,
        request: Request<pb::DrainRelayRequest>,
    ) -> Result<Response<pb::RelayResponse>, Status> {
        AdminApi::drain_relay(self, request).await
    }

    async fn undrain_relay(
        &self,
        request: Request<pb::UndrainRelayRequest>,
    ) -> Result<Response<pb::RelayResponse>, Status> {
        AdminApi::undrain_relay(self, request).await
    }

    async fn drain_site(
        &self,
        request: Request<pb::DrainSiteRequest>,
    ) -> Result<Response<pb::SiteDrainResponse>, Status> {
        AdminApi::drain_site(self, request).await
    }

    async fn undrain_site(
        &self,
        request: Request<pb::UndrainSiteRequest>,
    ) -> Result<Response<pb::SiteDrainResponse>, Status> {
        AdminApi::undrain_site(self, request).await
    }

    async fn schedule_maintenance(
        &self,
        request: Request<pb::ScheduleMaintenanceRequest>,
    ) -> Result<Response<pb::MaintenanceWindow>, Status> {
        AdminApi::schedule_maintenance(self, request).await
    }

    async fn list_maintenance(
        &self,
        request: Request<pb::ListMaintenanceRequest>,
    ) -> Result<Response<pb::ListMaintenanceResponse>, Status> {
        AdminApi::list_maintenance(self, request).await
    }

    async fn cancel_maintenance(
        &self,
        request: Request<pb::CancelMaintenanceRequest>,
    ) -> Result<Response<pb::MaintenanceWindow>, Status> {
        AdminApi::cancel_maintenance(self, request).await
    }

    type SaveSnapshotStream = ReceiverStream<Result<pb::BackupChunk, Status>>;

    async fn save_snapshot(
        &self,
        request: Request<pb::SaveSnapshotRequest>,
    ) -> Result<Response<Self::SaveSnapshotStream>, Status> {
        AdminApi::save_snapshot(self, request).await
    }

    async fn restore(
        &self,
        request: Request<pb::RestoreRequest>,
    ) -> Result<Response<pb::RestoreResponse>, Status> {
        AdminApi::restore(self, request).await
    }

    async fn list_audit(
        &self,
        request: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        AdminApi::list_audit(self, request).await
    }
}
