//! Site drains: leadership and clients move away, the site keeps voting.

use switchboard_api::ApiError;
use switchboard_proto::v1 as pb;
use switchboard_raft_store::Command;
use switchboard_raft_store::Proposal;
use switchboard_raft_store::safety::Step;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::AdminApi;
use crate::services::request_id;
use crate::site::TRANSFER_LEADER_DEADLINE;
use crate::site::most_caught_up_voter;
use crate::site::transfer_leadership;

impl AdminApi {
    pub(super) async fn drain_site(
        &self,
        request: Request<pb::DrainSiteRequest>,
    ) -> Result<Response<pb::SiteDrainResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        self.require_leader()?;
        let message = request.get_ref();
        let site_id = message.site_id;
        if !self.site.members().iter().any(|m| m.site_id == site_id) {
            return Err(ApiError::NotFound(format!("site {site_id} is not a member")).into());
        }
        self.check_safety(Step::DrainSite(site_id), message.force)?;
        let command = Command::SetSiteDraining {
            site_id,
            draining: true,
        };
        let proposal = Proposal::new(request_id(&message.request_id)?, principal.actor(), command);
        self.site.propose(proposal).await?;
        // A drained site does not lead.
        if site_id == self.site.id {
            let target = most_caught_up_voter(&self.site).ok_or_else(|| {
                ApiError::FailedPrecondition("no other voter to hand leadership to".into())
            })?;
            transfer_leadership(&self.site, target, TRANSFER_LEADER_DEADLINE).await?;
        }
        Ok(Response::new(pb::SiteDrainResponse {
            site_id,
            draining: true,
            leader_id: self.site.leader().map_or(0, |(id, _)| id),
        }))
    }

    pub(super) async fn undrain_site(
        &self,
        request: Request<pb::UndrainSiteRequest>,
    ) -> Result<Response<pb::SiteDrainResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let command = Command::SetSiteDraining {
            site_id: message.site_id,
            draining: false,
        };
        let proposal = Proposal::new(request_id(&message.request_id)?, principal.actor(), command);
        self.site.propose(proposal).await?;
        Ok(Response::new(pb::SiteDrainResponse {
            site_id: message.site_id,
            draining: false,
            leader_id: self.site.leader().map_or(0, |(id, _)| id),
        }))
    }
}
