//! The write path. Writes are accepted at any site: the leader stamps its
//! clock into the proposal and proposes it; a follower forwards it to the
//! leader over the raft port, retrying across elections until the write
//! deadline. A typed [`Request`] comes back as its typed answer.

use std::time::Instant;

use openraft::errors::ClientWriteError;
use openraft::errors::RaftError;
use switchboard_api::ApiError;
use switchboard_proto::v1::ForwardWriteRequest;
use switchboard_raft_store::Actor;
use switchboard_raft_store::ActorKind;
use switchboard_raft_store::Applied;
use switchboard_raft_store::Proposal;
use switchboard_raft_store::Reply;
use switchboard_raft_store::Request;
use switchboard_raft_store::SiteNode;
use switchboard_raft_store::ids::RequestId;
use switchboard_raft_store::ids::SiteId;
use switchboard_raft_store::reply::Outcome;
use switchboard_raft_store::request::Answer;
use switchboard_raft_store::request::NodeInfoVersion;
use switchboard_raft_store::wire;
use tonic::Code;

use super::Attempt;
use super::Site;
use super::Target;
use super::Unanswered;

/// Turns a refusal into an error and passes every other reply through.
pub fn accepted(reply: Reply) -> Result<Reply, ApiError> {
    match reply.outcome {
        Outcome::Refused(refusal) => Err(refusal.into()),
        _ => Ok(reply),
    }
}

/// A reply read as the typed answer of its request; a refusal is an error.
fn answered<A: Answer>(reply: Reply) -> Result<Applied<A>, ApiError> {
    reply.answer::<A>().map_err(ApiError::from)
}

impl Site {
    /// Proposes a typed request from any site (see `propose`) and returns
    /// its answer; a refusal is an error.
    pub async fn write<A: Answer>(
        &self,
        request_id: RequestId,
        actor: Actor,
        request: Request<A>,
    ) -> Result<Applied<A>, ApiError> {
        let proposal = Proposal::new(request_id, actor, request.into_command());
        // Every admin action once, at info, with who and what, on the site
        // that took the call (a forwarded write is not logged again).
        let admin = (proposal.actor.kind == ActorKind::Admin)
            .then(|| (proposal.actor.to_string(), proposal.command.describe()));
        let answer = self.propose(proposal).await.and_then(answered);
        if let Some((who, what)) = admin {
            match &answer {
                Ok(_) => tracing::info!(site = self.id, %who, %what, "admin action done"),
                Err(error) => {
                    tracing::info!(site = self.id, %who, %what, %error, "admin action refused")
                }
            }
        }
        answer
    }

    /// Proposes a typed request on this site as the leader (the lease keeper
    /// and the scheduler): UNAVAILABLE once it no longer leads.
    pub async fn write_as_leader<A: Answer>(
        &self,
        actor: Actor,
        request: Request<A>,
    ) -> Result<Applied<A>, ApiError> {
        let proposal = Proposal::new(RequestId::NONE, actor, request.into_command());
        answered(self.propose_as_leader(proposal).await?)
    }

    /// Proposes a new node-info signing key (the first, or the next one
    /// endorsed by the current). Only the leader may.
    pub async fn propose_signing_key(
        &self,
        actor: switchboard_raft_store::Actor,
    ) -> Result<Applied<NodeInfoVersion>, ApiError> {
        let key = self
            .signer
            .new_key(&self.reader.load().state, &self.cluster_id)?;
        self.write_as_leader(actor, Request::add_signing_key(key))
            .await
    }

    /// Proposes a command from any site: here if this site leads, else
    /// forwarded to the leader, retried across leader changes until the
    /// write deadline. Refusals come back as errors.
    pub async fn propose(&self, proposal: Proposal) -> Result<Reply, ApiError> {
        proposal.command.validate()?;
        let deadline = Instant::now() + self.settings.write_deadline;
        let proposal = &proposal;
        let answered = self
            .until_answered(deadline, |target| async move {
                match target {
                    Target::Here => self.propose_here(proposal.clone(), deadline).await,
                    Target::Leader(leader, node) => {
                        self.forward_write(leader, &node, proposal, deadline).await
                    }
                }
            })
            .await;
        match answered {
            Ok(reply) => accepted(reply),
            Err(Unanswered::Failed(error)) => Err(error),
            Err(Unanswered::Expired(last_failure)) => Err(ApiError::DeadlineExceeded(format!(
                "write not confirmed within {} ms ({last_failure}); its outcome is unknown, retry with the same request id",
                self.settings.write_deadline.as_millis()
            ))),
        }
    }

    /// Proposes on this site as the leader; used for forwarded writes too.
    /// A site that no longer leads answers UNAVAILABLE so the sender retries.
    pub async fn propose_as_leader(&self, proposal: Proposal) -> Result<Reply, ApiError> {
        let deadline = Instant::now() + self.settings.write_deadline;
        match self.propose_here(proposal, deadline).await {
            Ok(reply) => Ok(reply),
            Err(Attempt::Fail(error)) => Err(error),
            Err(Attempt::Retry(reason)) => Err(ApiError::Unavailable(reason)),
        }
    }

    async fn propose_here(
        &self,
        mut proposal: Proposal,
        deadline: Instant,
    ) -> Result<Reply, Attempt> {
        proposal.issued_at_ms = self.clock.unix_ms();
        let proposed = Instant::now();
        let remaining = deadline.saturating_duration_since(proposed);
        match tokio::time::timeout(remaining, self.raft.client_write(proposal)).await {
            Ok(Ok(response)) => {
                // Proposed to applied here: a quorum's fsync and one apply.
                metrics::histogram!("switchboard_raft_proposal_duration_seconds")
                    .record(proposed.elapsed().as_secs_f64());
                Ok(response.data)
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                Err(Attempt::Retry(format!(
                    "site {} is not the leader (leader: {:?})",
                    self.id, forward.leader_id
                )))
            }
            Ok(Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)))) => Err(
                Attempt::Retry("the entry was discarded by a leader change".into()),
            ),
            Ok(Err(RaftError::APIError(other))) => {
                Err(Attempt::Fail(ApiError::Internal(other.to_string())))
            }
            Ok(Err(RaftError::Fatal(fatal))) => Err(Attempt::Fail(ApiError::Unavailable(format!(
                "site stopping: {fatal}"
            )))),
            Err(_) => Err(Attempt::Retry("not committed before the deadline".into())),
        }
    }

    async fn forward_write(
        &self,
        leader: SiteId,
        node: &SiteNode,
        proposal: &Proposal,
        deadline: Instant,
    ) -> Result<Reply, Attempt> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut client = self
            .peers
            .raft_client(leader, &node.raft_addr)
            .map_err(|e| Attempt::Retry(e.to_string()))?;
        let request = self.peers.request(
            leader,
            ForwardWriteRequest {
                proposal: proposal.encode(),
            },
            Some(remaining),
        );
        match client.forward_write(request).await {
            Ok(response) => {
                let reply: Reply = wire::decode("forwarded reply", &response.into_inner().reply)
                    .map_err(|e| Attempt::Fail(ApiError::Internal(e.to_string())))?;
                Ok(reply)
            }
            Err(status) => match status.code() {
                Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Cancelled
                | Code::Unknown
                | Code::Aborted => Err(Attempt::Retry(format!(
                    "leader {leader}: {}",
                    status.message()
                ))),
                Code::InvalidArgument => Err(Attempt::Fail(ApiError::InvalidArgument(
                    status.message().into(),
                ))),
                _ => Err(Attempt::Fail(ApiError::Internal(format!(
                    "leader {leader}: {}",
                    status.message()
                )))),
            },
        }
    }
}
