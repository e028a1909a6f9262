//! Relay operations: removal, drain and undrain.

use switchboard_api::ApiError;
use switchboard_api::convert;
use switchboard_proto::v1 as pb;
use switchboard_raft_store::Command;
use switchboard_raft_store::Outcome;
use switchboard_raft_store::Proposal;
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
        let command = Command::RemoveRelay {
            relay_id: convert::relay_id(&message.relay_id)?,
        };
        let proposal = Proposal::new(request_id(&message.request_id)?, principal.actor(), command);
        let reply = self.site.propose(proposal).await?;
        Ok(Response::new(pb::RemoveRelayResponse {
            applied_index: reply.log_index,
        }))
    }

    pub(super) async fn drain_relay(
        &self,
        request: Request<pb::DrainRelayRequest>,
    ) -> Result<Response<pb::RelayResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let command = Command::StartDrain {
            relay_id: convert::relay_id(&message.relay_id)?,
            hosts_per_second: message.hosts_per_second,
            deadline_ms: message.deadline_unix_ms,
            force: message.force,
        };
        self.relay_command(principal, &message.request_id, command)
            .await
    }

    pub(super) async fn undrain_relay(
        &self,
        request: Request<pb::UndrainRelayRequest>,
    ) -> Result<Response<pb::RelayResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let command = Command::SetRelayState {
            relay_id: convert::relay_id(&message.relay_id)?,
            target: switchboard_raft_store::command::RelayAdminTarget::Active,
        };
        self.relay_command(principal, &message.request_id, command)
            .await
    }

    pub(super) async fn relay_command(
        &self,
        principal: Principal,
        request_id_bytes: &[u8],
        command: Command,
    ) -> Result<Response<pb::RelayResponse>, Status> {
        let proposal = Proposal::new(request_id(request_id_bytes)?, principal.actor(), command);
        let reply = self.site.propose(proposal).await?;
        match reply.outcome {
            Outcome::Relay(record) => Ok(Response::new(pb::RelayResponse {
                relay: Some(convert::relay(&record)),
                applied_index: reply.log_index,
            })),
            other => Err(ApiError::Internal(format!("unexpected outcome {other:?}")).into()),
        }
    }
}
