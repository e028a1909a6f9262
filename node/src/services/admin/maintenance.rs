//! Maintenance windows: schedule, list, cancel.

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
use crate::services::request_id;

impl AdminApi {
    pub(super) async fn schedule_maintenance(
        &self,
        request: Request<pb::ScheduleMaintenanceRequest>,
    ) -> Result<Response<pb::MaintenanceWindow>, Status> {
        let principal = self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let target = convert::maintenance_target(&message.target)?;
        let command = Command::ScheduleMaintenance {
            target,
            start_ms: message.start_unix_ms,
            end_ms: message.end_unix_ms,
            reason: message.reason.clone(),
        };
        let proposal = Proposal::new(request_id(&message.request_id)?, principal.actor(), command);
        match self.site.propose(proposal).await?.outcome {
            Outcome::Window(created) => Ok(Response::new(window(&created))),
            other => Err(ApiError::Internal(format!("unexpected outcome {other:?}")).into()),
        }
    }

    pub(super) async fn list_maintenance(
        &self,
        request: Request<pb::ListMaintenanceRequest>,
    ) -> Result<Response<pb::ListMaintenanceResponse>, Status> {
        self.site.auth.admin(&request)?;
        let applied = self.site.reader.load();
        Ok(Response::new(pb::ListMaintenanceResponse {
            windows: applied.state.windows().map(window).collect(),
        }))
    }

    pub(super) async fn cancel_maintenance(
        &self,
        request: Request<pb::CancelMaintenanceRequest>,
    ) -> Result<Response<pb::MaintenanceWindow>, Status> {
        let principal = self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let command = Command::CancelMaintenance {
            window_id: message.window_id,
        };
        let proposal = Proposal::new(request_id(&message.request_id)?, principal.actor(), command);
        match self.site.propose(proposal).await?.outcome {
            Outcome::Window(cancelled) => Ok(Response::new(window(&cancelled))),
            other => Err(ApiError::Internal(format!("unexpected outcome {other:?}")).into()),
        }
    }
}

/// A maintenance window in the API.
pub fn window(window: &switchboard_raft_store::state::MaintenanceWindow) -> pb::MaintenanceWindow {
    pb::MaintenanceWindow {
        id: window.id,
        target: window.target.to_string(),
        start_unix_ms: window.start_ms,
        end_unix_ms: window.end_ms,
        reason: window.reason.clone(),
        status: window.status.as_str().to_owned(),
        created_by: window.created_by.clone(),
    }
}
