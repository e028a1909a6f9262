//! Site drains: leadership and clients move away, the site keeps voting.

use switchboard_api::ApiError;
use switchboard_proto::v1 as pb;
use switchboard_raft_store::Request as WriteRequest;
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
        let request = WriteRequest::set_site_draining(site_id, true);
        self.site
            .write(request_id(&message.request_id)?, principal.actor(), request)
            .await?;
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
        let request = WriteRequest::set_site_draining(message.site_id, false);
        self.site
            .write(request_id(&message.request_id)?, principal.actor(), request)
            .await?;
        Ok(Response::new(pb::SiteDrainResponse {
            site_id: message.site_id,
            draining: false,
            leader_id: self.site.leader().map_or(0, |(id, _)| id),
        }))
    }
}
