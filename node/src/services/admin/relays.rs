//! Relay operations: removal, drain and undrain.

use switchboard_api::convert;
use switchboard_proto::v1 as pb;
use switchboard_raft_store::Request as WriteRequest;
use switchboard_raft_store::command::RelayAdminTarget;
use switchboard_raft_store::request::RelayChange;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::AdminApi;
use crate::services::auth::Principal;
use crate::services::request_id;

impl AdminApi {
    pub(super) async fn remove_relay(
        &self,
        request: Request<pb::RemoveRelayRequest>,
    ) -> Result<Response<pb::RemoveRelayResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let request = WriteRequest::remove_relay(convert::relay_id(&message.relay_id)?);
        let applied = self
            .site
            .write(request_id(&message.request_id)?, principal.actor(), request)
            .await?;
        Ok(Response::new(pb::RemoveRelayResponse {
            applied_index: applied.log_index,
        }))
    }

    pub(super) async fn drain_relay(
        &self,
        request: Request<pb::DrainRelayRequest>,
    ) -> Result<Response<pb::RelayResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let request = WriteRequest::start_drain(
            convert::relay_id(&message.relay_id)?,
            message.hosts_per_second,
            message.deadline_unix_ms,
            message.force,
        );
        self.relay_command(principal, &message.request_id, request)
            .await
    }

    pub(super) async fn undrain_relay(
        &self,
        request: Request<pb::UndrainRelayRequest>,
    ) -> Result<Response<pb::RelayResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let request = WriteRequest::set_relay_state(
            convert::relay_id(&message.relay_id)?,
            RelayAdminTarget::Active,
        );
        self.relay_command(principal, &message.request_id, request)
            .await
    }

    pub(super) async fn relay_command(
        &self,
        principal: Principal,
        request_id_bytes: &[u8],
        request: WriteRequest<RelayChange>,
    ) -> Result<Response<pb::RelayResponse>, Status> {
        let applied = self
            .site
            .write(request_id(request_id_bytes)?, principal.actor(), request)
            .await?;
        Ok(Response::new(pb::RelayResponse {
            relay: Some(convert::relay(&applied.answer.relay)),
            applied_index: applied.log_index,
        }))
    }
}
