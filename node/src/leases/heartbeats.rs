//! Relay heartbeats received by a follower, forwarded to the leader in one
//! batch per interval. A relay's heartbeat call is answered once the leader
//! has recorded the batch holding it.

use parking_lot::Mutex;
use std::collections::HashMap;

use switchboard_proto::v1::RelayHeartbeat;
use tokio::sync::oneshot;

/// Relays waiting for one batch; past this a heartbeat is refused
/// (RESOURCE_EXHAUSTED) instead of queued.
pub const HEARTBEATS_PENDING_MAX: usize = 50_000;

/// What a waiting relay is told: the lease TTL, or why the leader did not
/// record it.
pub type BatchOutcome = Result<u64, String>;

#[derive(Default)]
struct Pending {
    heartbeats: HashMap<String, RelayHeartbeat>,
    waiters: Vec<oneshot::Sender<BatchOutcome>>,
}

/// Heartbeats waiting for the next forward.
#[derive(Default)]
pub struct HeartbeatBatcher {
    pending: Mutex<Pending>,
}

impl HeartbeatBatcher {
    /// Queues a heartbeat; the receiver answers when its batch was recorded
    /// (or failed). `None` when too many wait already.
    pub fn submit(&self, heartbeat: RelayHeartbeat) -> Option<oneshot::Receiver<BatchOutcome>> {
        let mut pending = self.pending.lock();
        if pending.waiters.len() >= HEARTBEATS_PENDING_MAX {
            return None;
        }
        let (done, receiver) = oneshot::channel();
        pending
            .heartbeats
            .insert(heartbeat.relay_id.clone(), heartbeat);
        pending.waiters.push(done);
        Some(receiver)
    }

    /// Takes the pending batch (one heartbeat per relay, the latest) and its
    /// waiters; `None` when nothing waits.
    pub fn take(&self) -> Option<(Vec<RelayHeartbeat>, Vec<oneshot::Sender<BatchOutcome>>)> {
        let mut pending = self.pending.lock();
        if pending.waiters.is_empty() {
            return None;
        }
        let taken = std::mem::take(&mut *pending);
        Some((taken.heartbeats.into_values().collect(), taken.waiters))
    }
}
