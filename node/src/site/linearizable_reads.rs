//! Linearizable reads at any site: a read index from the leader (or this
//! site as the leader), then waiting until this site has applied up to it.

use std::sync::Arc;
use std::time::Instant;

use openraft::ReadPolicy;
use openraft::errors::RaftError;
use openraft::raft::linearizable_read::Linearizer;
use openraft::raft::linearizable_read::ReadLogId;
use switchboard_api::ApiError;
use switchboard_proto::v1::ReadIndexRequest;
use switchboard_raft_store::SiteNode;
use switchboard_raft_store::ids::SiteId;
use switchboard_raft_store::raft_records;
use switchboard_raft_store::store::AppliedState;
use switchboard_raft_store::types::LogId;

use super::Attempt;
use super::Site;
use super::Target;
use super::Unanswered;

impl Site {
    /// The applied state once it includes every write acknowledged before
    /// this call (read index through the leader), retried across elections
    /// until the read deadline.
    pub async fn read_linearizable(&self, lease_read: bool) -> Result<Arc<AppliedState>, ApiError> {
        let deadline = Instant::now() + self.settings.read_deadline;
        let read_log_id = self
            .until_answered(deadline, |target| async move {
                match target {
                    Target::Here => self.read_index_here(lease_read).await,
                    Target::Leader(leader, node) => {
                        self.read_index_from(leader, &node, lease_read, deadline)
                            .await
                    }
                }
            })
            .await;
        match read_log_id {
            Ok(read_log_id) => self.await_applied(read_log_id, deadline).await,
            Err(Unanswered::Failed(error)) => Err(error),
            Err(Unanswered::Expired(last_failure)) => Err(ApiError::Unavailable(format!(
                "no linearizable read within {} ms: {last_failure}",
                self.settings.read_deadline.as_millis()
            ))),
        }
    }

    /// The read index on this site as the leader (also serves followers).
    async fn read_index_here(&self, lease_read: bool) -> Result<LogId, Attempt> {
        let policy = if lease_read {
            ReadPolicy::LeaseRead
        } else {
            ReadPolicy::ReadIndex
        };
        match self.raft.get_read_linearizer(policy).await {
            Ok(linearizer) => Ok(*linearizer.read_log_id().log_id()),
            Err(RaftError::APIError(error)) => Err(Attempt::Retry(error.to_string())),
            Err(RaftError::Fatal(fatal)) => Err(Attempt::Fail(ApiError::Unavailable(format!(
                "site stopping: {fatal}"
            )))),
        }
    }

    /// The read index for the peer service, as an error a follower can act on.
    pub async fn read_index_for_peer(&self, lease_read: bool) -> Result<LogId, ApiError> {
        self.read_index_here(lease_read)
            .await
            .map_err(|attempt| match attempt {
                Attempt::Retry(reason) => ApiError::Unavailable(reason),
                Attempt::Fail(error) => error,
            })
    }

    async fn read_index_from(
        &self,
        leader: SiteId,
        node: &SiteNode,
        lease_read: bool,
        deadline: Instant,
    ) -> Result<LogId, Attempt> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut client = self
            .peers
            .raft_client(leader, &node.raft_addr)
            .map_err(|e| Attempt::Retry(e.to_string()))?;
        let request = self
            .peers
            .request(leader, ReadIndexRequest { lease_read }, Some(remaining));
        let response = client.read_index(request).await;
        self.peers.note(leader, &node.raft_addr, &response);
        match response {
            Ok(response) => raft_records::decode("read log id", &response.into_inner().read_log_id)
                .map_err(|e| Attempt::Fail(ApiError::Internal(e.to_string()))),
            Err(status) => Err(Attempt::Retry(format!(
                "leader {leader}: {}",
                status.message()
            ))),
        }
    }

    async fn await_applied(
        &self,
        read_log_id: LogId,
        deadline: Instant,
    ) -> Result<Arc<AppliedState>, ApiError> {
        let applied = self.reader.load().last_applied;
        let linearizer = Linearizer::new(self.id, ReadLogId::from_log_id(read_log_id), applied);
        let remaining = deadline.saturating_duration_since(Instant::now());
        match linearizer
            .try_await_ready(&self.raft, Some(remaining))
            .await
        {
            Ok(Ok(_)) => Ok(self.reader.load()),
            Ok(Err(state)) => Err(ApiError::Unavailable(format!(
                "site {} did not apply up to {} in time (applied {:?})",
                self.id,
                state.read_log_id(),
                state.applied()
            ))),
            Err(fatal) => Err(ApiError::Unavailable(format!("site stopping: {fatal}"))),
        }
    }
}
