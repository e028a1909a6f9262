//! openraft's network over tonic: every RPC of `RaftNetworkV2`, snapshots
//! in chunks under the gRPC message limit, transfer-leader included.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::peer::clients::PeerClients;
use crate::peer::leader_age::LeaderAge;
use crate::site::Clock;
use openraft::RaftNetworkFactory;
use openraft::errors::NetworkError;
use openraft::errors::RPCError;
use openraft::errors::ReplicationClosed;
use openraft::errors::StreamingError;
use openraft::errors::Timeout;
use openraft::errors::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RPCTypes;
use openraft::network::v2::RaftNetworkV2;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::TransferLeaderResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::type_config::alias::SnapshotOf;
use switchboard_api::limits::SNAPSHOT_CHUNK_BYTES;
use switchboard_proto::v1::RaftMessage;
use switchboard_proto::v1::SnapshotChunk;
use switchboard_raft_store::SiteNode;
use switchboard_raft_store::TypeConfig;
use switchboard_raft_store::raft_records;
use switchboard_raft_store::raft_records::Recorded;
use switchboard_raft_store::store::SnapshotFile;
use switchboard_raft_store::store::read_chunk;
use switchboard_raft_store::types::Vote;
use tonic::Code;
use tonic::Status;

/// Makes a connection object per peer; channels are pooled underneath.
pub struct PeerNetworkFactory {
    pub self_id: u64,
    pub peers: PeerClients,
    /// Stamps this site's quorum-ack age on its AppendEntries.
    pub leader_age: LeaderAge,
    /// The site's clock, for that stamp.
    pub clock: Clock,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetworkFactory {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: u64, node: &SiteNode) -> PeerConnection {
        PeerConnection {
            self_id: self.self_id,
            target,
            addr: node.raft_addr.clone(),
            peers: self.peers.clone(),
            leader_age: self.leader_age.clone(),
            clock: self.clock,
        }
    }
}

/// openraft's view of one peer.
pub struct PeerConnection {
    self_id: u64,
    target: u64,
    addr: String,
    peers: PeerClients,
    leader_age: LeaderAge,
    clock: Clock,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct WireError(String);

impl PeerConnection {
    fn status_error(
        &self,
        status: Status,
        action: RPCTypes,
        timeout: Duration,
    ) -> RPCError<TypeConfig> {
        match status.code() {
            Code::DeadlineExceeded => RPCError::Timeout(Timeout {
                action,
                id: self.self_id,
                target: self.target,
                timeout,
            }),
            // Connection refused, peer stopping, peer has no raft yet: back off.
            Code::Unavailable | Code::PermissionDenied | Code::FailedPrecondition => {
                RPCError::Unreachable(Unreachable::new(&WireError(format!(
                    "site {} at {}: {}",
                    self.target,
                    self.addr,
                    status.message()
                ))))
            }
            _ => RPCError::Network(NetworkError::new(&WireError(format!(
                "site {} at {}: {:?}: {}",
                self.target,
                self.addr,
                status.code(),
                status.message()
            )))),
        }
    }

    async fn unary<Req, Resp, F, Fut>(
        &self,
        action: RPCTypes,
        message: &Req,
        option: &RPCOption,
        call: F,
    ) -> Result<Resp, RPCError<TypeConfig>>
    where
        Req: Recorded,
        Resp: Recorded,
        F: FnOnce(
            switchboard_proto::v1::raft_peer_client::RaftPeerClient<tonic::transport::Channel>,
            tonic::Request<RaftMessage>,
        ) -> Fut,
        Fut: Future<Output = Result<tonic::Response<RaftMessage>, Status>>,
    {
        let timeout = option.hard_ttl();
        let client = self
            .peers
            .raft_client(self.target, &self.addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&WireError(e.to_string()))))?;
        let mut request = self.peers.request(
            self.target,
            RaftMessage {
                body: raft_records::encode(message),
            },
            Some(timeout),
        );
        if matches!(action, RPCTypes::AppendEntries) {
            self.leader_age
                .stamp(request.metadata_mut(), self.clock.unix_ms());
        }
        // openraft drops a heartbeat at its own timeout, as long as ours:
        // a call dropped unfinished counts as unanswered too.
        let pending = self.peers.begin(self.target, &self.addr);
        let response = call(client, request).await;
        pending.end(&response);
        let response = response.map_err(|status| self.status_error(status, action, timeout))?;
        raft_records::decode("raft response", &response.into_inner().body)
            .map_err(|e| RPCError::Network(NetworkError::new(&WireError(e.to_string()))))
    }
}

impl RaftNetworkV2<TypeConfig> for PeerConnection {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.unary(
            RPCTypes::AppendEntries,
            &rpc,
            &option,
            |mut client, request| async move { client.append_entries(request).await },
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.unary(
            RPCTypes::Vote,
            &rpc,
            &option,
            |mut client, request| async move { client.vote(request).await },
        )
        .await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.unary(
            RPCTypes::Vote,
            &rpc,
            &option,
            |mut client, request| async move { client.pre_vote(request).await },
        )
        .await
    }

    async fn transfer_leader(
        &mut self,
        rpc: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.unary(
            RPCTypes::TransferLeader,
            &rpc,
            &option,
            |mut client, request| async move { client.transfer_leader(request).await },
        )
        .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: SnapshotOf<TypeConfig, SnapshotFile>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let timeout = option.hard_ttl();
        let unreachable = |e: String| StreamingError::Unreachable(Unreachable::new(&WireError(e)));
        let client = self
            .peers
            .raft_client(self.target, &self.addr)
            .map_err(|e| unreachable(e.to_string()))?;
        let total = snapshot.snapshot.len;
        let header = raft_records::encode(&(vote, snapshot.meta.clone()));
        let file = Arc::new(snapshot.snapshot);
        let target = self.target;
        tracing::info!(target, bytes = total, last_log_id = ?snapshot.meta.last_log_id, "sending snapshot");

        // Chunks are read on demand, one at a time, so memory stays at one chunk.
        let chunks = futures::stream::unfold(
            (0u64, Some(header), false),
            move |(offset, header, done)| {
                let file = file.clone();
                async move {
                    if done {
                        return None;
                    }
                    let data = tokio::task::spawn_blocking(move || {
                        read_chunk(&file, offset, SNAPSHOT_CHUNK_BYTES)
                    })
                    .await;
                    let data = match data {
                        Ok(Ok(data)) => data,
                        Ok(Err(error)) => {
                            tracing::error!(target, %error, "cannot read snapshot chunk");
                            return None;
                        }
                        Err(error) => {
                            tracing::error!(target, %error, "snapshot reader task failed");
                            return None;
                        }
                    };
                    let next = offset + data.len() as u64;
                    let last = next >= total;
                    let chunk = SnapshotChunk {
                        header: header.unwrap_or_default(),
                        offset,
                        total_bytes: total,
                        last,
                        data,
                    };
                    Some((chunk, (next, None, last)))
                }
            },
        );

        let mut request = self.peers.request(target, chunks, Some(timeout));
        request.set_timeout(timeout);
        let mut client = client;
        let send = client.install_snapshot(request);
        let response = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            response = send => response,
        };
        self.peers.note(target, &self.addr, &response);
        let response = response.map_err(|status| match status.code() {
            Code::DeadlineExceeded => StreamingError::Timeout(Timeout {
                action: RPCTypes::InstallSnapshot,
                id: self.self_id,
                target,
                timeout,
            }),
            _ => unreachable(format!(
                "site {target}: {:?}: {}",
                status.code(),
                status.message()
            )),
        })?;
        tracing::info!(target, bytes = total, "snapshot sent");
        raft_records::decode("snapshot response", &response.into_inner().body)
            .map_err(|e| unreachable(e.to_string()))
    }
}
