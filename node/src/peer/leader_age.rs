//! When the leader last heard from a quorum, sent with every AppendEntries
//! so that a follower's freshness is tied to the leader's standing and not
//! to the mere arrival of messages.
//!
//! A deposed leader that can still reach a follower (a one-way cut, a
//! partition that keeps one link) goes on sending heartbeats; without this,
//! the follower would count each as fresh contact and report about 0
//! staleness indefinitely. And a message can arrive long after it was sent:
//! over a flapping link TCP holds it in its retransmission queue for
//! seconds. So the leader sends the wall-clock time of its last quorum
//! acknowledgement, and the follower counts its state fresh as of that
//! time. This trusts clocks as lease reads and relay leases do: a follower
//! whose clock is behind the leader's by e ms reports up to e ms too
//! little staleness (docs/architecture.md, "Clocks").

use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver;
use openraft::type_config::alias::WatchReceiverOf;
use switchboard_raft_store::TypeConfig;

use crate::site::Standing;
use crate::site::standing_of;
use tonic::metadata::MetadataMap;
use tonic::metadata::MetadataValue;

/// Metadata key: the Unix time in milliseconds, on the sending leader's
/// clock, of its last quorum acknowledgement. Absent: the leader has none
/// yet (just elected).
pub const QUORUM_ACKED_HEADER: &str = "x-switchboard-quorum-acked-unix-ms";

type Metrics = WatchReceiverOf<TypeConfig, openraft::RaftMetrics<TypeConfig>>;

/// This site's own Raft metrics, once Raft has started (the network is made
/// before Raft is, so the handle is filled in afterwards).
#[derive(Clone, Default)]
pub struct LeaderAge {
    metrics: Arc<OnceLock<Metrics>>,
}

impl LeaderAge {
    /// Connects the handle to the started Raft; later calls change nothing.
    pub fn attach(&self, metrics: Metrics) {
        let _ = self.metrics.set(metrics);
    }

    /// Since this site, as leader, last heard from a quorum (zero when it
    /// is the only voter: it is its own quorum, and its learners are as
    /// fresh as it is).
    fn since_quorum_ack(&self) -> Option<Duration> {
        let metrics = self.metrics.get()?;
        let metrics = metrics.borrow_watched();
        match standing_of(&metrics, metrics.id) {
            Standing::Alone => Some(Duration::ZERO),
            Standing::Acked(since) => Some(since),
            Standing::NotLeader | Standing::Unacked => None,
        }
    }

    /// Puts the time of the last quorum acknowledgement, on this site's
    /// clock `now_unix_ms`, into an outgoing AppendEntries.
    pub fn stamp(&self, metadata: &mut MetadataMap, now_unix_ms: u64) {
        if let Some(age) = self.since_quorum_ack() {
            let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
            let acked = now_unix_ms.saturating_sub(age_ms);
            metadata.insert(QUORUM_ACKED_HEADER, MetadataValue::from(acked));
        }
    }
}

/// How long before `now_unix_ms` (this site's clock) the sender of an
/// incoming AppendEntries last heard from a quorum; `None` if the message
/// says nothing that parses (it then proves nothing about freshness). A
/// time ahead of this clock counts as now.
pub fn quorum_ack_age(metadata: &MetadataMap, now_unix_ms: u64) -> Option<Duration> {
    let value = metadata.get(QUORUM_ACKED_HEADER)?.to_str().ok()?;
    let acked: u64 = value.parse().ok()?;
    Some(Duration::from_millis(now_unix_ms.saturating_sub(acked)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_age_counts_the_time_in_flight_and_a_bad_one_proves_nothing() {
        let mut metadata = MetadataMap::new();
        assert_eq!(quorum_ack_age(&metadata, 10_000), None);
        metadata.insert(QUORUM_ACKED_HEADER, MetadataValue::from(9_750u64));
        assert_eq!(
            quorum_ack_age(&metadata, 10_000),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            quorum_ack_age(&metadata, 13_750),
            Some(Duration::from_secs(4)),
            "held up in flight for 3.5 s: that much staler"
        );
        assert_eq!(
            quorum_ack_age(&metadata, 9_000),
            Some(Duration::ZERO),
            "a leader clock ahead of this one counts as now"
        );
        metadata.insert(QUORUM_ACKED_HEADER, MetadataValue::from_static("soon"));
        assert_eq!(quorum_ack_age(&metadata, 10_000), None);
        let unattached = LeaderAge::default();
        let mut outgoing = MetadataMap::new();
        unattached.stamp(&mut outgoing, 10_000);
        assert!(outgoing.is_empty(), "no Raft yet: no time claimed");
    }
}
