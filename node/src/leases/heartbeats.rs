//! Relay heartbeats received by a follower, forwarded to the leader in one
//! batch per interval. A relay's heartbeat call is answered once the leader
//! has recorded the batch holding it.

use parking_lot::Mutex;
use std::collections::HashMap;

use switchboard_proto::v1::RelayHeartbeat;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// When a heartbeat reached the first site, for the leader that records it
/// at `now` after that site held it `held_ms` (its forward interval): the
/// lease counts from there, so a relay that stopped is judged down a lease
/// after its last heartbeat, not up to a forward interval later. Transit
/// between the sites is not subtracted, so the lease never starts before
/// the heartbeat arrived. A held time is trusted up to one `ttl`.
pub fn received_at(now: Instant, held_ms: u32, ttl: std::time::Duration) -> Instant {
    let held = std::time::Duration::from_millis(u64::from(held_ms)).min(ttl);
    now.checked_sub(held).unwrap_or(now)
}

/// Relays waiting for one batch; past this a heartbeat is refused
/// (RESOURCE_EXHAUSTED) instead of queued.
pub const HEARTBEATS_PENDING_MAX: usize = 50_000;

/// What a waiting relay is told: the lease TTL, or why the leader did not
/// record it.
pub type BatchOutcome = Result<u64, String>;

#[derive(Default)]
struct Pending {
    /// The latest heartbeat of each relay, and when it arrived here.
    heartbeats: HashMap<String, (RelayHeartbeat, Instant)>,
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
    pub fn submit(
        &self,
        heartbeat: RelayHeartbeat,
        received_at: Instant,
    ) -> Option<oneshot::Receiver<BatchOutcome>> {
        let mut pending = self.pending.lock();
        if pending.waiters.len() >= HEARTBEATS_PENDING_MAX {
            return None;
        }
        let (done, receiver) = oneshot::channel();
        pending
            .heartbeats
            .insert(heartbeat.relay_id.clone(), (heartbeat, received_at));
        pending.waiters.push(done);
        Some(receiver)
    }

    /// Takes the pending batch (one heartbeat per relay, the latest, each
    /// saying how long it was held here as of `now`) and its waiters;
    /// `None` when nothing waits.
    pub fn take(
        &self,
        now: Instant,
    ) -> Option<(Vec<RelayHeartbeat>, Vec<oneshot::Sender<BatchOutcome>>)> {
        let mut pending = self.pending.lock();
        if pending.waiters.is_empty() {
            return None;
        }
        let taken = std::mem::take(&mut *pending);
        let heartbeats = taken
            .heartbeats
            .into_values()
            .map(|(mut heartbeat, received_at)| {
                let held = now.saturating_duration_since(received_at);
                heartbeat.held_ms = u32::try_from(held.as_millis()).unwrap_or(u32::MAX);
                heartbeat
            })
            .collect();
        Some((heartbeats, taken.waiters))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn heartbeat(relay_id: &str) -> RelayHeartbeat {
        RelayHeartbeat {
            relay_id: relay_id.into(),
            incarnation: 1,
            active_sessions: 0,
            held_ms: 0,
        }
    }

    /// A forwarded heartbeat says how long it waited here, and the leader
    /// dates its lease back by that much (never by more than a lease).
    #[tokio::test(start_paused = true)]
    async fn a_forwarded_heartbeat_is_dated_from_its_arrival() {
        let batcher = HeartbeatBatcher::default();
        let arrived = Instant::now();
        let _waiter = batcher.submit(heartbeat("relay-a"), arrived).unwrap();
        tokio::time::advance(Duration::from_millis(180)).await;
        let (heartbeats, waiters) = batcher.take(Instant::now()).unwrap();
        assert_eq!((heartbeats.len(), waiters.len()), (1, 1));
        assert_eq!(heartbeats[0].held_ms, 180);
        tokio::time::advance(Duration::from_millis(3)).await;
        let ttl = Duration::from_secs(5);
        let leader_now = Instant::now();
        assert_eq!(
            received_at(leader_now, heartbeats[0].held_ms, ttl),
            arrived + Duration::from_millis(3),
            "transit is not subtracted"
        );
        assert_eq!(
            received_at(leader_now, u32::MAX, ttl),
            leader_now - ttl,
            "a held time is trusted up to a lease"
        );
        assert!(batcher.take(Instant::now()).is_none(), "nothing waits");
    }
}
