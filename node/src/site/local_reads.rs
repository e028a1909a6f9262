//! Local reads: this site's applied state as it is, with how stale it is.

use std::sync::Arc;

use openraft::async_runtime::watch::WatchReceiver;
use switchboard_api::ApiError;
use switchboard_raft_store::store::AppliedState;

use super::Site;
use super::leadership::Standing;
use super::leadership::standing_of;

impl Site {
    /// Staleness of an applied state that reached `applied`: zero on a
    /// leader that a quorum acknowledged within its lease and that has
    /// applied everything committed, in its own term too (before its first
    /// entry commits, entries of earlier terms may be committed without its
    /// knowing); on a leader past its lease, the time since that quorum
    /// acknowledgement; else the time since this site last heard from a
    /// leader whose commit index it had applied. `None`: never heard.
    pub fn staleness_at(&self, applied: u64) -> Option<u64> {
        let (standing, complete) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow_watched();
            let complete = metrics.local_committed.as_ref().is_some_and(|committed| {
                committed.leader_id.term == metrics.current_term && committed.index <= applied
            });
            (standing_of(&metrics, self.id), complete)
        };
        let lease = self.settings.leader_lease;
        match standing {
            Standing::Alone if complete => Some(0),
            Standing::Acked(since) if complete && since <= lease => Some(0),
            Standing::Acked(since) if complete => Some(since.as_millis() as u64),
            // Not leading, or leading with a state not yet complete: as
            // fresh as it was when it last followed.
            _ => self.contact.staleness_ms(applied),
        }
    }

    /// Staleness of the applied state as it is now (see [`Site::staleness_at`]).
    pub fn staleness_ms(&self) -> Option<u64> {
        self.staleness_at(self.reader.load().applied_index())
    }

    /// The applied state as it is here, if no staler than `max_stale_ms`
    /// (0: the site's `local_read_stale_ms_max`). Returns the state and its
    /// staleness, both from one load of the state. A site that has not
    /// heard from a leader since it started refuses: its state may predate
    /// anything (a restart after a drain, say).
    pub fn read_local(&self, max_stale_ms: u64) -> Result<(Arc<AppliedState>, u64), ApiError> {
        let bound = match max_stale_ms {
            0 => self.settings.local_read_stale_max.as_millis() as u64,
            asked => asked,
        };
        let state = self.reader.load();
        match self.staleness_at(state.applied_index()) {
            Some(staleness) if staleness <= bound => Ok((state, staleness)),
            Some(staleness) => Err(ApiError::Unavailable(format!(
                "site {} is {staleness} ms stale, over the {bound} ms bound; try another site",
                self.id
            ))),
            None => Err(ApiError::Unavailable(format!(
                "site {} has not heard from a leader since it started; try another site",
                self.id
            ))),
        }
    }
}
