//! Node info: the signing key rotation and the operator's notice.

use switchboard_proto::v1 as pb;
use switchboard_raft_store::Command;
use switchboard_raft_store::Proposal;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::AdminApi;
use crate::services::request_id;

impl AdminApi {
    pub(super) async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::NodeInfoResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        self.require_leader()?;
        let reply = self.site.propose_signing_key(principal.actor()).await?;
        Ok(Response::new(self.node_info_response(&reply)))
    }

    pub(super) async fn set_notice(
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
