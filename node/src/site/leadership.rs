//! Handing leadership to another voter: whom to choose and the wait until
//! it leads. The daemon's shutdown, the scheduler (keeping leadership off
//! drained sites) and the admin service all use it.

use std::collections::BTreeSet;
use std::time::Duration;
use std::time::Instant;

use openraft::async_runtime::watch::WatchReceiver;
use switchboard_api::ApiError;

use super::Site;
use switchboard_raft_store::TypeConfig;

/// How a site stands as leader, from its Raft metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// It does not lead.
    NotLeader,
    /// It leads and is the only voter: it is its own quorum.
    Alone,
    /// It leads; a quorum last acknowledged it this long ago.
    Acked(Duration),
    /// It leads and no quorum has acknowledged it yet (just elected).
    Unacked,
}

/// How site `id` stands as leader in `metrics`.
pub fn standing_of(metrics: &openraft::RaftMetrics<TypeConfig>, id: u64) -> Standing {
    use openraft::Instant as _;
    if metrics.current_leader != Some(id) {
        return Standing::NotLeader;
    }
    if metrics.membership_config.membership().voter_ids().count() == 1 {
        return Standing::Alone;
    }
    match &metrics.last_quorum_acked {
        Some(at) => Standing::Acked(at.elapsed()),
        None => Standing::Unacked,
    }
}

/// How long a leader transfer may take: the target must catch up, time out
/// the old lease and win an election.
pub const TRANSFER_LEADER_DEADLINE: Duration = Duration::from_secs(10);

impl Site {
    /// How this site stands as leader now.
    pub fn standing(&self) -> Standing {
        standing_of(&self.raft.metrics().borrow_watched(), self.id)
    }

    /// Refuses work that a leader cut off from its quorum could not finish:
    /// past its lease it can serve no lease read and expect no commit soon,
    /// and another site leads or soon will. The caller moves on at once
    /// instead of waiting out the deadline here.
    pub fn refuse_if_cut_off_leader(&self) -> Result<(), ApiError> {
        match self.standing() {
            Standing::Acked(since) if since > self.settings.leader_lease => {
                Err(ApiError::Unavailable(format!(
                    "site {} leads but has heard from no quorum for {} ms (cut off?); try another site",
                    self.id,
                    since.as_millis()
                )))
            }
            _ => Ok(()),
        }
    }
}

/// The other voter to hand leadership to, as the leader sees it: one in
/// client service before a drained one, then the longest replicated log.
pub fn most_caught_up_voter(site: &Site) -> Option<u64> {
    let drained: BTreeSet<u64> = site
        .reader
        .load()
        .state
        .sites()
        .filter(|(_, record)| record.draining)
        .map(|(id, _)| *id)
        .collect();
    let metrics = site.raft.metrics();
    let metrics = metrics.borrow_watched();
    let voters: Vec<u64> = metrics
        .membership_config
        .membership()
        .voter_ids()
        .filter(|id| *id != site.id)
        .collect();
    let replication = metrics.replication.as_ref();
    voters.into_iter().max_by_key(|id| {
        let matched = replication
            .and_then(|r| r.get(id).cloned())
            .flatten()
            .map_or(0, |log_id| log_id.index);
        (!drained.contains(id), matched, std::cmp::Reverse(*id))
    })
}

/// Asks openraft to hand leadership to `target` and waits until it leads.
pub async fn transfer_leadership(
    site: &Site,
    target: u64,
    deadline: Duration,
) -> Result<(), ApiError> {
    let voters: BTreeSet<u64> = {
        let metrics = site.raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics.membership_config.membership().voter_ids().collect()
    };
    if !voters.contains(&target) {
        return Err(ApiError::FailedPrecondition(format!(
            "site {target} is not a voter"
        )));
    }
    if target == site.id {
        return Ok(());
    }
    site.raft
        .trigger()
        .transfer_leader(target)
        .await
        .map_err(|e| ApiError::Unavailable(format!("site stopping: {e}")))?;
    let until = Instant::now() + deadline;
    let mut metrics = site.raft.metrics();
    loop {
        if metrics.borrow_watched().current_leader == Some(target) {
            return Ok(());
        }
        let remaining = until.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(ApiError::DeadlineExceeded(format!(
                "site {target} did not take over within {} ms",
                deadline.as_millis()
            )));
        }
        let _ = tokio::time::timeout(remaining, metrics.changed()).await;
    }
}
