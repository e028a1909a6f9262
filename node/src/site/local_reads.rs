//! Local reads: this site's applied state as it is, with how stale it is.

use std::sync::Arc;

use openraft::async_runtime::watch::WatchReceiver;
use switchboard_api::ApiError;
use switchboard_raft_store::store::AppliedState;

use super::Site;

impl Site {
    /// Staleness of this site's applied state: zero on a leader a quorum
    /// acknowledged within its lease; else the time since it last heard from
    /// a leader whose commit index it had applied. `None`: never heard.
    pub fn staleness_ms(&self) -> Option<u64> {
        let applied = self.reader.load().applied_index();
        let (is_leader, since_quorum_ack) = {
            use openraft::Instant as _;
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow_watched();
            let since = metrics
                .last_quorum_acked
                .as_ref()
                .map(|at| at.elapsed().as_millis() as u64);
            (metrics.current_leader == Some(self.id), since)
        };
        if is_leader && let Some(since) = since_quorum_ack {
            let lease = self.settings.leader_lease.as_millis() as u64;
            return Some(if since <= lease { 0 } else { since });
        }
        self.contact.staleness_ms(applied)
    }

    /// The applied state as it is here, if no staler than `max_stale_ms`
    /// (0: any staleness). Returns the state and its staleness.
    pub fn read_local(&self, max_stale_ms: u64) -> Result<(Arc<AppliedState>, u64), ApiError> {
        let state = self.reader.load();
        let staleness = self.staleness_ms();
        match staleness {
            Some(staleness) if max_stale_ms == 0 || staleness <= max_stale_ms => {
                Ok((state, staleness))
            }
            Some(staleness) => Err(ApiError::Unavailable(format!(
                "site {} is {staleness} ms stale, over the {max_stale_ms} ms asked for; try another site",
                self.id
            ))),
            None if max_stale_ms == 0 => Ok((state, u64::MAX)),
            None => Err(ApiError::Unavailable(format!(
                "site {} has not heard from a leader yet",
                self.id
            ))),
        }
    }
}
