//! Node info: the signing key rotation and the operator's notice.

use switchboard_proto::v1 as pb;
use switchboard_raft_store::Request as WriteRequest;
use switchboard_raft_store::request::NodeInfoVersion;
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
        let applied = self.site.propose_signing_key(principal.actor()).await?;
        Ok(Response::new(node_info_response(applied.answer)))
    }

    pub(super) async fn set_notice(
        &self,
        request: Request<pb::SetNoticeRequest>,
    ) -> Result<Response<pb::NodeInfoResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let request = WriteRequest::set_notice(message.text.clone());
        let applied = self
            .site
            .write(request_id(&message.request_id)?, principal.actor(), request)
            .await?;
        Ok(Response::new(node_info_response(applied.answer)))
    }
}

/// Node info's version after a change, in the API.
fn node_info_response(version: NodeInfoVersion) -> pb::NodeInfoResponse {
    pb::NodeInfoResponse {
        node_info: None,
        current: Some(pb::NodeInfoVersion {
            era: version.era,
            epoch: version.epoch,
        }),
    }
}
