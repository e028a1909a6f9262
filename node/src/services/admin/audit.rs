//! The audit log.

use switchboard_proto::v1 as pb;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::AdminApi;

impl AdminApi {
    pub(super) async fn list_audit(
        &self,
        request: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        self.site.auth.admin(&request)?;
        let applied = self.site.reader.load();
        let limit = match request.get_ref().limit {
            0 => usize::MAX,
            limit => limit as usize,
        };
        let records = applied
            .state
            .audit()
            .rev()
            .take(limit)
            .map(|record| pb::AuditRecord {
                seq: record.seq,
                at_unix_ms: record.at_ms,
                log_index: record.log_index,
                actor: record.actor.clone(),
                action: record.action.clone(),
                result: record.result.clone(),
            })
            .collect();
        Ok(Response::new(pb::ListAuditResponse { records }))
    }
}
