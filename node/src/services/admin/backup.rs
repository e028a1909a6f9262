//! Backups: streaming a snapshot out and restoring one in steps.

use switchboard_api::ApiError;
use switchboard_proto::v1 as pb;
use switchboard_raft_store::Request as WriteRequest;
use switchboard_raft_store::request::RestoreProgress;
use switchboard_raft_store::store::read_chunk;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::AdminApi;
use crate::services::request_id;

impl AdminApi {
    pub(super) async fn save_snapshot(
        &self,
        request: Request<pb::SaveSnapshotRequest>,
    ) -> Result<Response<ReceiverStream<Result<pb::BackupChunk, Status>>>, Status> {
        self.site.auth.admin(&request)?;
        // A linearizable read first: the backup holds every acknowledged write.
        let applied = self.site.read_linearizable(false).await?;
        let snapshots = self.site.snapshots.clone();
        let file = tokio::task::spawn_blocking(move || snapshots.write_backup(&applied))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(ApiError::from)?;
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let file = std::sync::Arc::new(file);
            let total = file.len;
            let mut offset = 0u64;
            loop {
                let reader = file.clone();
                let chunk = tokio::task::spawn_blocking(move || {
                    read_chunk(
                        &reader,
                        offset,
                        switchboard_api::limits::SNAPSHOT_CHUNK_BYTES,
                    )
                })
                .await;
                let data = match chunk {
                    Ok(Ok(data)) => data,
                    Ok(Err(error)) => {
                        let _ = sender.send(Err(Status::internal(error.to_string()))).await;
                        return;
                    }
                    Err(error) => {
                        let _ = sender.send(Err(Status::internal(error.to_string()))).await;
                        return;
                    }
                };
                let next = offset + data.len() as u64;
                let last = next >= total;
                if sender
                    .send(Ok(pb::BackupChunk {
                        offset,
                        data,
                        total_bytes: total,
                        last,
                    }))
                    .await
                    .is_err()
                    || last
                {
                    return;
                }
                offset = next;
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    pub(super) async fn restore(
        &self,
        request: Request<pb::RestoreRequest>,
    ) -> Result<Response<pb::RestoreResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let request_id = request_id(&message.request_id)?;
        let actor = principal.actor();
        let response = match &message.step {
            Some(pb::restore_request::Step::Begin(begin)) => {
                let request = WriteRequest::restore_begin(begin.backup_era, begin.rows_expected);
                progress(self.site.write(request_id, actor, request).await?.answer)
            }
            Some(pb::restore_request::Step::Rows(rows)) => {
                let rows = rows
                    .rows
                    .iter()
                    .map(|row| (row.key.clone(), row.value.clone()))
                    .collect();
                let request = WriteRequest::restore_rows(rows);
                progress(self.site.write(request_id, actor, request).await?.answer)
            }
            Some(pb::restore_request::Step::Commit(true)) => {
                let request = WriteRequest::restore_commit(self.keep_backup_keys().await?);
                let restored = self.site.write(request_id, actor, request).await?.answer;
                pb::RestoreResponse {
                    era: restored.era,
                    routes: restored.routes,
                    ..Default::default()
                }
            }
            Some(pb::restore_request::Step::Abort(true)) => {
                let request = WriteRequest::restore_abort();
                self.site.write(request_id, actor, request).await?;
                pb::RestoreResponse::default()
            }
            _ => {
                return Err(ApiError::InvalidArgument(
                    "a restore step is begin, rows, commit or abort".into(),
                )
                .into());
            }
        };
        Ok(Response::new(response))
    }

    /// Whether a restore keeps the backup's signing keys: it does if this
    /// cluster can sign with them (it was rebuilt with the lost cluster's
    /// state key). Read through the leader: every staged row is applied here.
    async fn keep_backup_keys(&self) -> Result<bool, Status> {
        let applied = self.site.read_linearizable(false).await?;
        let staged = applied.state.staged_node_info();
        Ok(staged
            .as_ref()
            .and_then(|meta| meta.current_key())
            .is_some_and(|key| self.site.signer.can_open(key)))
    }
}

/// A restore's progress in the API.
fn progress(progress: RestoreProgress) -> pb::RestoreResponse {
    pb::RestoreResponse {
        rows_received: progress.rows_received,
        rows_expected: progress.rows_expected,
        era: 0,
        routes: 0,
    }
}
