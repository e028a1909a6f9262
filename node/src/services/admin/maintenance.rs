//! Maintenance windows: schedule, list, cancel.

use switchboard_api::ApiError;
use switchboard_api::convert;
use switchboard_proto::v1 as pb;
use switchboard_raft_store::Request as WriteRequest;
use switchboard_raft_store::command::validate_window;
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
        let settings = &self.site.settings;
        validate_window(
            message.start_unix_ms,
            message.end_unix_ms,
            self.site.clock.unix_ms(),
            settings.maintenance_window_ms_max,
            settings.maintenance_lead_ms_max,
        )
        .map_err(ApiError::from)?;
        let request = WriteRequest::schedule_maintenance(
            target,
            message.start_unix_ms,
            message.end_unix_ms,
            message.reason.clone(),
        );
        let applied = self
            .site
            .write(request_id(&message.request_id)?, principal.actor(), request)
            .await?;
        Ok(Response::new(window(&applied.answer)))
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
        let request = WriteRequest::cancel_maintenance(message.window_id);
        let applied = self
            .site
            .write(request_id(&message.request_id)?, principal.actor(), request)
            .await?;
        Ok(Response::new(window(&applied.answer)))
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
