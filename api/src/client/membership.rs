//! Admin calls on the cluster itself: status, initialization, membership
//! changes and leadership transfer.

use std::time::Duration;
use std::time::Instant;

use switchboard_proto::v1 as pb;
use tonic::Code;

use super::ClientError;
use super::ClusterClient;

/// How often `wait_caught_up` asks the leader for progress.
pub const CATCH_UP_POLL_INTERVAL: Duration = Duration::from_millis(200);

impl ClusterClient {
    /// Asks one site for its own status, without retrying elsewhere.
    pub async fn status_of(&self, endpoint: &str) -> Result<pb::StatusResponse, ClientError> {
        let channel = self.channel(endpoint)?;
        let mut request = self.request(pb::StatusRequest {});
        let timeout = self.settings.connect_timeout.max(Duration::from_secs(2));
        request.set_timeout(timeout);
        let answer = tokio::time::timeout(timeout, Self::admin_client(channel).status(request))
            .await
            .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("no status in time")));
        answer
            .map(|r| r.into_inner())
            .map_err(|status| ClientError::Refused {
                endpoint: endpoint.to_owned(),
                code: status.code(),
                message: status.message().to_owned(),
            })
    }

    /// Asks every known site for its status, all at once.
    pub async fn status_all(&self) -> Vec<(String, Result<pb::StatusResponse, ClientError>)> {
        let endpoints = self.endpoints();
        let calls = endpoints
            .iter()
            .map(|endpoint| async move { (endpoint.clone(), self.status_of(endpoint).await) });
        futures::future::join_all(calls).await
    }

    /// Initializes a new cluster through one site.
    pub async fn initialize(
        &self,
        endpoint: &str,
        voters: Vec<pb::SiteEndpoints>,
    ) -> Result<(), ClientError> {
        let channel = self.channel(endpoint)?;
        Self::admin_client(channel)
            .initialize_cluster(self.request(pb::InitializeClusterRequest { voters }))
            .await
            .map(|_| ())
            .map_err(|status| ClientError::Refused {
                endpoint: endpoint.to_owned(),
                code: status.code(),
                message: status.message().to_owned(),
            })
    }

    /// Adds a site as a learner; returns at once (see `wait_caught_up`).
    pub async fn add_learner(
        &self,
        site: pb::SiteEndpoints,
    ) -> Result<pb::MembershipResponse, ClientError> {
        let message = pb::AddLearnerRequest { site: Some(site) };
        unary!(self, admin_client, message, add_learner)
    }

    /// Waits until the leader has replicated to `site_id` everything it had
    /// when the wait began, calling `progress(matched, target)` on each poll
    /// (about every 200 ms). Returns the time it took.
    pub async fn wait_caught_up(
        &self,
        site_id: u64,
        deadline: Duration,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Duration, ClientError> {
        let started = Instant::now();
        let mut target = None;
        loop {
            let statuses = self.status_all().await;
            let leader = statuses
                .iter()
                .filter_map(|(_, s)| s.as_ref().ok())
                .find(|s| s.role == "leader");
            if let Some(leader) = leader {
                let target = *target.get_or_insert(leader.last_log_index);
                let matched = leader
                    .members
                    .iter()
                    .find(|m| m.site_id == site_id)
                    .and_then(|m| m.matched_index);
                if let Some(matched) = matched {
                    progress(matched, target);
                    if matched >= target {
                        return Ok(started.elapsed());
                    }
                }
            }
            if started.elapsed() >= deadline {
                return Err(ClientError::Unreachable {
                    deadline_ms: deadline.as_millis(),
                    attempts: 0,
                    last: format!("site {site_id} did not catch up"),
                    last_code: Some(Code::DeadlineExceeded),
                });
            }
            tokio::time::sleep(CATCH_UP_POLL_INTERVAL).await;
        }
    }

    /// Makes a learner a voter (`force` skips the safety rule).
    pub async fn promote_voter(
        &self,
        site_id: u64,
        force: bool,
    ) -> Result<pb::MembershipResponse, ClientError> {
        unary!(
            self,
            admin_client,
            pb::PromoteVoterRequest { site_id, force },
            promote_voter
        )
    }

    /// Removes a site from the cluster.
    pub async fn remove_member(
        &self,
        site_id: u64,
        force: bool,
    ) -> Result<pb::MembershipResponse, ClientError> {
        unary!(
            self,
            admin_client,
            pb::RemoveMemberRequest { site_id, force },
            remove_member
        )
    }

    /// Hands leadership to `to_site_id` (0: the most caught-up other voter).
    pub async fn transfer_leader(
        &self,
        to_site_id: u64,
        force: bool,
    ) -> Result<pb::TransferLeaderResponse, ClientError> {
        unary!(
            self,
            admin_client,
            pb::TransferLeaderRequest { to_site_id, force },
            transfer_leader
        )
    }
}
