//! Admin calls on what the cluster carries: tokens, the notice and signing
//! key, relay and site drains, maintenance windows, the audit log, backups.

use switchboard_proto::v1 as pb;

use super::ClientError;
use super::ClusterClient;
use super::new_request_id;

impl ClusterClient {
    /// Issues a bearer token for a host or a client.
    pub async fn issue_token(
        &self,
        role: pb::TokenRole,
        subject: &str,
        ttl_secs: u64,
    ) -> Result<pb::IssueTokenResponse, ClientError> {
        let message = pb::IssueTokenRequest {
            role: role as i32,
            subject: subject.to_owned(),
            ttl_secs,
        };
        unary!(self, admin_client, message, issue_token)
    }

    /// Sets (or with empty text clears) the service notice.
    pub async fn set_notice(
        &self,
        request_id: &[u8],
        text: &str,
    ) -> Result<pb::NodeInfoResponse, ClientError> {
        let message = pb::SetNoticeRequest {
            request_id: request_id.to_vec(),
            text: text.to_owned(),
        };
        unary!(self, admin_client, message, set_notice)
    }

    /// Makes a new node-info signing key, endorsed by the current one.
    pub async fn rotate_signing_key(
        &self,
        request_id: &[u8],
    ) -> Result<pb::NodeInfoResponse, ClientError> {
        let message = pb::RotateSigningKeyRequest {
            request_id: request_id.to_vec(),
        };
        unary!(self, admin_client, message, rotate_signing_key)
    }

    /// Removes a relay that holds no route.
    pub async fn remove_relay(
        &self,
        request_id: &[u8],
        relay_id: &str,
    ) -> Result<pb::RemoveRelayResponse, ClientError> {
        let message = pb::RemoveRelayRequest {
            request_id: request_id.to_vec(),
            relay_id: relay_id.to_owned(),
        };
        unary!(self, admin_client, message, remove_relay)
    }

    /// Drains a relay at `hosts_per_second`, everything left going at once
    /// after `deadline_unix_ms` (0: no deadline).
    pub async fn drain_relay(
        &self,
        relay_id: &str,
        hosts_per_second: u32,
        deadline_unix_ms: u64,
        force: bool,
    ) -> Result<pb::RelayResponse, ClientError> {
        let message = pb::DrainRelayRequest {
            request_id: new_request_id(),
            relay_id: relay_id.to_owned(),
            hosts_per_second,
            deadline_unix_ms,
            force,
        };
        unary!(self, admin_client, message, drain_relay)
    }

    /// Puts a relay back into placement.
    pub async fn undrain_relay(&self, relay_id: &str) -> Result<pb::RelayResponse, ClientError> {
        let message = pb::UndrainRelayRequest {
            request_id: new_request_id(),
            relay_id: relay_id.to_owned(),
        };
        unary!(self, admin_client, message, undrain_relay)
    }

    /// Takes a site out of client service.
    pub async fn drain_site(
        &self,
        site_id: u64,
        force: bool,
    ) -> Result<pb::SiteDrainResponse, ClientError> {
        let message = pb::DrainSiteRequest {
            request_id: new_request_id(),
            site_id,
            force,
        };
        unary!(self, admin_client, message, drain_site)
    }

    /// Puts a site back into client service.
    pub async fn undrain_site(&self, site_id: u64) -> Result<pb::SiteDrainResponse, ClientError> {
        let message = pb::UndrainSiteRequest {
            request_id: new_request_id(),
            site_id,
        };
        unary!(self, admin_client, message, undrain_site)
    }

    /// Schedules a maintenance window of `target` (`relay:ID` or `site:ID`).
    pub async fn schedule_maintenance(
        &self,
        target: &str,
        start_unix_ms: u64,
        end_unix_ms: u64,
        reason: &str,
    ) -> Result<pb::MaintenanceWindow, ClientError> {
        let message = pb::ScheduleMaintenanceRequest {
            request_id: new_request_id(),
            target: target.to_owned(),
            start_unix_ms,
            end_unix_ms,
            reason: reason.to_owned(),
        };
        unary!(self, admin_client, message, schedule_maintenance)
    }

    /// Lists maintenance windows.
    pub async fn list_maintenance(&self) -> Result<pb::ListMaintenanceResponse, ClientError> {
        unary!(
            self,
            admin_client,
            pb::ListMaintenanceRequest {},
            list_maintenance
        )
    }

    /// Cancels a maintenance window.
    pub async fn cancel_maintenance(
        &self,
        window_id: u64,
    ) -> Result<pb::MaintenanceWindow, ClientError> {
        let message = pb::CancelMaintenanceRequest {
            request_id: new_request_id(),
            window_id,
        };
        unary!(self, admin_client, message, cancel_maintenance)
    }

    /// The audit log, newest first (0: all kept).
    pub async fn list_audit(&self, limit: u32) -> Result<pb::ListAuditResponse, ClientError> {
        unary!(
            self,
            admin_client,
            pb::ListAuditRequest { limit },
            list_audit
        )
    }

    /// Opens a backup stream (the state in the snapshot format).
    pub async fn save_snapshot(&self) -> Result<tonic::Streaming<pb::BackupChunk>, ClientError> {
        unary!(
            self,
            admin_client,
            pb::SaveSnapshotRequest {},
            save_snapshot,
            stream
        )
        .map(|(stream, _)| stream)
    }

    /// One step of a restore.
    pub async fn restore_step(
        &self,
        request_id: &[u8],
        step: pb::restore_request::Step,
    ) -> Result<pb::RestoreResponse, ClientError> {
        let message = pb::RestoreRequest {
            request_id: request_id.to_vec(),
            step: Some(step),
        };
        unary!(self, admin_client, message, restore)
    }
}
