//! The raft-port service: openraft's RPCs, snapshot chunks, forwarded writes
//! and the read index for followers.

use std::sync::Arc;

use futures::StreamExt;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::VoteRequest;
use openraft::type_config::alias::SnapshotOf;
use switchboard_proto::v1::ForwardFailure;
use switchboard_proto::v1::ForwardWriteRequest;
use switchboard_proto::v1::ForwardWriteResponse;
use switchboard_proto::v1::ForwardWritesRequest;
use switchboard_proto::v1::ForwardWritesResponse;
use switchboard_proto::v1::ForwardedWrite;
use switchboard_proto::v1::HeartbeatBatch;
use switchboard_proto::v1::HeartbeatBatchResponse;
use switchboard_proto::v1::RaftMessage;
use switchboard_proto::v1::ReadIndexRequest;
use switchboard_proto::v1::ReadIndexResponse;
use switchboard_proto::v1::SnapshotChunk;
use switchboard_proto::v1::forwarded_write::Outcome;
use switchboard_proto::v1::raft_peer_server::RaftPeer;
use switchboard_raft_store::Proposal;
use switchboard_raft_store::TypeConfig;
use switchboard_raft_store::raft_records;
use switchboard_raft_store::raft_records::Recorded;
use switchboard_raft_store::store::SnapshotFile;
use switchboard_raft_store::types::SnapshotMeta;
use switchboard_raft_store::types::Vote;
use switchboard_raft_store::wire;
use tokio::io::AsyncWriteExt;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic::Streaming;

use crate::leases::heartbeats::HEARTBEATS_PENDING_MAX;
use crate::peer::clients::CLUSTER_HEADER;
use crate::peer::clients::TARGET_SITE_HEADER;
use crate::peer::leader_age::quorum_ack_age;
use crate::site::FORWARD_BATCH_PROPOSALS_MAX;
use crate::site::FORWARDED_CALLS_SERVED_MAX;
use crate::site::Site;
use switchboard_api::ApiError;
use switchboard_api::limits;

/// Serves the raft port of one site.
pub struct PeerService {
    site: Arc<Site>,
    /// Forwarded-write calls being served (`FORWARDED_CALLS_SERVED_MAX`).
    forwarded_calls: Arc<tokio::sync::Semaphore>,
}

impl PeerService {
    pub fn new(site: Arc<Site>) -> Self {
        PeerService {
            site,
            forwarded_calls: Arc::new(tokio::sync::Semaphore::new(FORWARDED_CALLS_SERVED_MAX)),
        }
    }

    /// Refuses a caller that is not a member site (by its certificate), and
    /// a request meant for another cluster or another site.
    fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let members: Vec<u64> = self.site.members().iter().map(|m| m.site_id).collect();
        self.site.auth.site(request, &members)?;
        let metadata = request.metadata();
        let cluster = metadata.get(CLUSTER_HEADER).and_then(|v| v.to_str().ok());
        if cluster != Some(self.site.cluster_id.as_str()) {
            return Err(Status::permission_denied(format!(
                "peer request for cluster {cluster:?}, this is cluster {:?}",
                self.site.cluster_id
            )));
        }
        let target = metadata
            .get(TARGET_SITE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if target != Some(self.site.id) {
            return Err(Status::failed_precondition(format!(
                "peer request for site {target:?} reached site {}",
                self.site.id
            )));
        }
        Ok(())
    }
}

/// One forwarded write's result as the follower reads it.
fn forwarded(result: Result<switchboard_raft_store::Reply, ApiError>) -> ForwardedWrite {
    let outcome = match result {
        Ok(reply) => Outcome::Reply(wire::encode(&reply)),
        Err(error) => {
            let status = Status::from(error);
            Outcome::Failure(ForwardFailure {
                code: status.code() as i32,
                message: status.message().to_owned(),
            })
        }
    };
    ForwardedWrite {
        outcome: Some(outcome),
    }
}

fn decode<T: Recorded>(what: &'static str, bytes: &[u8]) -> Result<T, Status> {
    raft_records::decode(what, bytes).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn raft_failure(error: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("raft: {error}"))
}

fn message<T: Recorded>(value: &T) -> Response<RaftMessage> {
    Response::new(RaftMessage {
        body: raft_records::encode(value),
    })
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let received_at = tokio::time::Instant::now();
        self.check(&request)?;
        let rpc: AppendEntriesRequest<TypeConfig> =
            decode("append entries", &request.get_ref().body)?;
        // Fresh once applied up to what the leader had acknowledged when it
        // stamped the message, which may be past the body's commit index.
        let leader_commit = rpc
            .leader_commit
            .as_ref()
            .map_or(0, |id| id.index)
            .max(crate::peer::leader_age::leader_index(request.metadata()).unwrap_or(0));
        let now_unix_ms = self.site.clock.unix_ms();
        let leader_age = quorum_ack_age(request.metadata(), now_unix_ms);
        if let Some(offset) =
            crate::peer::leader_age::clock_offset_ms(request.metadata(), now_unix_ms)
        {
            metrics::gauge!("switchboard_clock_offset_from_leader_seconds")
                .set(offset as f64 / 1000.0);
        }
        let leader = rpc.vote.leader_id().node_id;
        let response = self
            .site
            .raft
            .append_entries(rpc)
            .await
            .map_err(raft_failure)?;
        // A message without the leader's quorum-ack age proves nothing
        // about freshness (see peer::leader_age).
        if matches!(
            response,
            AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_)
        ) && let Some(age) = leader_age
        {
            let applied = self.site.reader.load().applied_index();
            self.site.contact.record_received(
                leader_commit,
                applied,
                age,
                received_at,
                Some(leader),
            );
        }
        Ok(message(&response))
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.check(&request)?;
        let rpc: VoteRequest<TypeConfig> = decode("vote", &request.get_ref().body)?;
        let response = self.site.raft.vote(rpc).await.map_err(raft_failure)?;
        Ok(message(&response))
    }

    async fn pre_vote(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.check(&request)?;
        let rpc: VoteRequest<TypeConfig> = decode("pre-vote", &request.get_ref().body)?;
        let response = self.site.raft.pre_vote(rpc).await.map_err(raft_failure)?;
        Ok(message(&response))
    }

    async fn transfer_leader(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.check(&request)?;
        let rpc: TransferLeaderRequest<TypeConfig> =
            decode("transfer leader", &request.get_ref().body)?;
        let response = self
            .site
            .raft
            .handle_transfer_leader(rpc)
            .await
            .map_err(raft_failure)?;
        Ok(message(&response))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.check(&request)?;
        let mut chunks = request.into_inner();
        let first = chunks
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))??;
        let (vote, meta): (Vote, SnapshotMeta) = decode("snapshot header", &first.header)?;
        if first.total_bytes > limits::SNAPSHOT_BYTES_MAX {
            return Err(Status::resource_exhausted(format!(
                "snapshot of {} bytes is over the {} byte limit",
                first.total_bytes,
                limits::SNAPSHOT_BYTES_MAX
            )));
        }
        let total = first.total_bytes;
        let path = self.site.snapshots.incoming_path();
        let receive = async {
            let mut file = tokio::fs::File::create(&path)
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
            let mut received = 0u64;
            let mut next_report = 0u64;
            let mut chunk = Some(first);
            loop {
                let current = match chunk.take() {
                    Some(current) => current,
                    None => chunks
                        .next()
                        .await
                        .ok_or_else(|| Status::invalid_argument("snapshot stream ended early"))??,
                };
                if current.offset != received {
                    return Err(Status::invalid_argument(format!(
                        "chunk at {} but {received} bytes received",
                        current.offset
                    )));
                }
                received += current.data.len() as u64;
                if received > total {
                    return Err(Status::invalid_argument("snapshot longer than announced"));
                }
                file.write_all(&current.data)
                    .await
                    .map_err(|e| Status::internal(e.to_string()))?;
                if received >= next_report {
                    tracing::info!(
                        received,
                        total,
                        percent = received * 100 / total.max(1),
                        "receiving snapshot"
                    );
                    next_report = received + total / 10 + 1;
                }
                if current.last {
                    break;
                }
            }
            if received != total {
                return Err(Status::invalid_argument(format!(
                    "received {received} of {total} snapshot bytes"
                )));
            }
            // Synced before install: the state will be rebuilt from this file.
            file.sync_all()
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
            Ok(())
        };
        if let Err(status) = receive.await {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(status);
        }
        let file = SnapshotFile::open(&path).map_err(|e| Status::internal(e.to_string()))?;
        let snapshot = SnapshotOf::<TypeConfig, SnapshotFile> {
            meta,
            snapshot: file,
        };
        let response = self
            .site
            .raft
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(raft_failure)?;
        Ok(message(&response))
    }

    async fn forward_write(
        &self,
        request: Request<ForwardWriteRequest>,
    ) -> Result<Response<ForwardWriteResponse>, Status> {
        self.check(&request)?;
        let proposal = Proposal::decode(&request.get_ref().proposal)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        proposal
            .command
            .validate()
            .map_err(|e| Status::from(ApiError::from(e)))?;
        let reply = self.site.propose_as_leader(proposal).await?;
        Ok(Response::new(ForwardWriteResponse {
            log_index: reply.log_index,
            reply: wire::encode(&reply),
        }))
    }

    async fn forward_writes(
        &self,
        request: Request<ForwardWritesRequest>,
    ) -> Result<Response<ForwardWritesResponse>, Status> {
        self.check(&request)?;
        let Ok(_serving) = self.forwarded_calls.try_acquire() else {
            return Err(Status::unavailable(format!(
                "the leader serves {FORWARDED_CALLS_SERVED_MAX} forwarding calls at once; retry"
            )));
        };
        let encoded = &request.get_ref().proposals;
        if encoded.len() > FORWARD_BATCH_PROPOSALS_MAX {
            return Err(Status::resource_exhausted(format!(
                "at most {FORWARD_BATCH_PROPOSALS_MAX} forwarded writes per call, got {}",
                encoded.len()
            )));
        }
        // Each proposal stands alone: one that does not decode or validate
        // is refused, and the others are proposed.
        let mut results: Vec<Option<ForwardedWrite>> = Vec::with_capacity(encoded.len());
        let mut proposals = Vec::with_capacity(encoded.len());
        for bytes in encoded {
            match Proposal::decode(bytes)
                .map_err(ApiError::from)
                .and_then(|proposal| {
                    proposal.command.validate()?;
                    Ok(proposal)
                }) {
                Ok(proposal) => {
                    proposals.push(proposal);
                    results.push(None);
                }
                Err(error) => results.push(Some(forwarded(Err(error)))),
            }
        }
        let mut replies = self
            .site
            .propose_many_as_leader(proposals)
            .await
            .into_iter();
        let results = results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| {
                    forwarded(replies.next().unwrap_or_else(|| {
                        Err(ApiError::Internal("a proposal went unanswered".into()))
                    }))
                })
            })
            .collect();
        Ok(Response::new(ForwardWritesResponse { results }))
    }

    async fn forward_heartbeats(
        &self,
        request: Request<HeartbeatBatch>,
    ) -> Result<Response<HeartbeatBatchResponse>, Status> {
        self.check(&request)?;
        let heartbeats = &request.get_ref().heartbeats;
        if heartbeats.len() > HEARTBEATS_PENDING_MAX {
            return Err(Status::resource_exhausted(format!(
                "at most {HEARTBEATS_PENDING_MAX} heartbeats per batch"
            )));
        }
        let lease_ttl_ms = self.site.record_heartbeats(heartbeats)?;
        Ok(Response::new(HeartbeatBatchResponse { lease_ttl_ms }))
    }

    async fn read_index(
        &self,
        request: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexResponse>, Status> {
        self.check(&request)?;
        let log_id = self
            .site
            .read_index_for_peer(request.get_ref().lease_read)
            .await?;
        Ok(Response::new(ReadIndexResponse {
            read_log_id: raft_records::encode(&log_id),
        }))
    }
}
