//! The write path. Writes are accepted at any site: the leader stamps its
//! clock into the proposal and proposes it; a follower forwards it to the
//! leader over the raft port, retrying across elections until the write
//! deadline. A typed [`Request`] comes back as its typed answer.

use std::time::Instant;

use openraft::errors::ClientWriteError;
use openraft::errors::RaftError;
use switchboard_api::ApiError;
use switchboard_raft_store::Actor;
use switchboard_raft_store::ActorKind;
use switchboard_raft_store::Applied;
use switchboard_raft_store::Proposal;
use switchboard_raft_store::Reply;
use switchboard_raft_store::Request;
use switchboard_raft_store::SiteNode;
use switchboard_raft_store::TypeConfig;
use switchboard_raft_store::ids::RequestId;
use switchboard_raft_store::ids::SiteId;
use switchboard_raft_store::reply::Outcome;
use switchboard_raft_store::request::Answer;
use switchboard_raft_store::request::NodeInfoVersion;
use tonic::Code;

use futures::StreamExt;

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
        self.propose_here(proposal, deadline)
            .await
            .map_err(Attempt::into_error)
    }

    /// Proposes a batch of writes on this site as the leader, together
    /// (one openraft batch); used for writes forwarded by a follower. Each
    /// gets its own answer, in order; UNAVAILABLE once this site no longer
    /// leads.
    pub async fn propose_many_as_leader(
        &self,
        proposals: Vec<Proposal>,
    ) -> Vec<Result<Reply, ApiError>> {
        let count = proposals.len();
        let issued_at_ms = self.clock.unix_ms();
        let proposals = proposals.into_iter().map(|mut proposal| {
            proposal.issued_at_ms = issued_at_ms;
            proposal
        });
        let proposed = Instant::now();
        let deadline = proposed + self.settings.write_deadline;
        if count == 0 {
            return Vec::new();
        }
        let mut results = match self.raft.client_write_many(proposals).await {
            Ok(results) => results,
            Err(fatal) => {
                let error = self.stopping_message(fatal);
                return (0..count)
                    .map(|_| Err(ApiError::Unavailable(error.clone())))
                    .collect();
            }
        };
        // Results come in submission order. The first that does not come
        // (the deadline, a stopping core) ends the reading: the stream must
        // not be polled again, and a later result read off it would be
        // taken for the one that did not come. The rest are retried.
        let mut answers = Vec::with_capacity(count);
        let deadline = tokio::time::Instant::from_std(deadline);
        let unanswered = loop {
            if answers.len() == count {
                break None;
            }
            match tokio::time::timeout_at(deadline, results.next()).await {
                Ok(Some(Ok(Ok(response)))) => {
                    answers.push(Ok(self.committed(proposed, response.response)))
                }
                Ok(Some(Ok(Err(refused)))) => answers.push(Err(self.refused(refused).into_error())),
                Ok(Some(Err(fatal))) => break Some(self.stopping_message(fatal)),
                Ok(None) => break Some(self.stopping_message("the write stream ended")),
                Err(_) => break Some(NOT_COMMITTED_IN_TIME.to_owned()),
            }
        };
        if let Some(reason) = unanswered {
            answers.resize_with(count, || Err(ApiError::Unavailable(reason.clone())));
        }
        answers
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
            Ok(Ok(response)) => Ok(self.committed(proposed, response.data)),
            Ok(Err(RaftError::APIError(refused))) => Err(self.refused(refused)),
            Ok(Err(RaftError::Fatal(fatal))) => Err(Attempt::Fail(self.stopping(fatal))),
            Err(_) => Err(not_committed_in_time()),
        }
    }

    /// A write's reply, its proposal-to-apply time recorded: a quorum's
    /// fsync and one apply.
    fn committed(&self, proposed: Instant, reply: Reply) -> Reply {
        metrics::histogram!("switchboard_raft_proposal_duration_seconds")
            .record(proposed.elapsed().as_secs_f64());
        reply
    }

    /// Why openraft did not take a write, and whether another try may.
    fn refused(&self, error: ClientWriteError<TypeConfig>) -> Attempt {
        match error {
            ClientWriteError::ForwardToLeader(forward) => Attempt::Retry(format!(
                "site {} is not the leader (leader: {:?})",
                self.id, forward.leader_id
            )),
            ClientWriteError::LogEntryDiscarded(_) => {
                Attempt::Retry("the entry was discarded by a leader change".into())
            }
            other => Attempt::Fail(ApiError::Internal(other.to_string())),
        }
    }

    fn stopping(&self, why: impl std::fmt::Display) -> ApiError {
        ApiError::Unavailable(self.stopping_message(why))
    }

    fn stopping_message(&self, why: impl std::fmt::Display) -> String {
        format!("site {} stopping: {why}", self.id)
    }

    async fn forward_write(
        &self,
        leader: SiteId,
        node: &SiteNode,
        proposal: &Proposal,
        deadline: Instant,
    ) -> Result<Reply, Attempt> {
        let encoded = proposal.encode().into();
        self.forwarder
            .forward(leader, &node.raft_addr, encoded, deadline)
            .await
            .map_err(|status| forward_failure(leader, &status))
    }
}

const NOT_COMMITTED_IN_TIME: &str = "not committed before the deadline";

fn not_committed_in_time() -> Attempt {
    Attempt::Retry(NOT_COMMITTED_IN_TIME.into())
}

/// What a leader's (or the call's) status means for a forwarded write:
/// another try for what a leader change explains, an error for the rest.
fn forward_failure(leader: SiteId, status: &tonic::Status) -> Attempt {
    match status.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Cancelled
        | Code::Unknown
        | Code::Aborted => Attempt::Retry(format!("leader {leader}: {}", status.message())),
        Code::InvalidArgument => Attempt::Fail(ApiError::InvalidArgument(status.message().into())),
        _ => Attempt::Fail(ApiError::Internal(format!(
            "leader {leader}: {}",
            status.message()
        ))),
    }
}
