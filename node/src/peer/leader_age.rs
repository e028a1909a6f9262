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
use switchboard_raft_store::store::StateReader;

use crate::site::Standing;
use crate::site::standing_of;
use tonic::metadata::MetadataMap;
use tonic::metadata::MetadataValue;

/// Metadata key: the Unix time in milliseconds, on the sending leader's
/// clock, of its last quorum acknowledgement. Absent: the leader has none
/// yet (just elected).
pub const QUORUM_ACKED_HEADER: &str = "x-switchboard-quorum-acked-unix-ms";
/// Metadata key: the index a follower must have applied before the
/// message makes it fresh as of that acknowledgement: the leader's commit
/// and applied index when it stamped the message. The message's own
/// `leader_commit` is not enough: openraft may have built the body before
/// a write committed and was acknowledged, and the stamp, taken as the
/// message leaves, then names a later quorum acknowledgement (seen once
/// under one-way cuts: a follower declared 44 ms of staleness but missed a
/// detach acknowledged 47 ms before it answered).
pub const LEADER_INDEX_HEADER: &str = "x-switchboard-leader-index";
/// Metadata key: the sending leader's clock, Unix milliseconds, as the
/// message left: a follower's clock offset from the leader is at most the
/// difference on arrival less the time in flight (for the offset alert).
pub const SENT_AT_HEADER: &str = "x-switchboard-sent-unix-ms";

type Metrics = WatchReceiverOf<TypeConfig, openraft::RaftMetrics<TypeConfig>>;

/// This site's own Raft metrics, once Raft has started (the network is made
/// before Raft is, so the handle is filled in afterwards).
#[derive(Clone, Default)]
pub struct LeaderAge {
    metrics: Arc<OnceLock<Metrics>>,
    reader: Arc<OnceLock<StateReader>>,
}

impl LeaderAge {
    /// Connects the handle to the started Raft and this site's applied
    /// state; later calls change nothing.
    pub fn attach(&self, metrics: Metrics, reader: StateReader) {
        let _ = self.metrics.set(metrics);
        let _ = self.reader.set(reader);
    }

    /// Every write this leader has acknowledged is at or below it: its
    /// applied state is published before any caller is answered, and its
    /// commit index is at least that.
    fn leader_index(&self) -> u64 {
        let committed = self.metrics.get().map_or(0, |metrics| {
            let metrics = metrics.borrow_watched();
            metrics.local_committed.as_ref().map_or(0, |id| id.index)
        });
        let applied = self.reader.get().map_or(0, |r| r.load().applied_index());
        committed.max(applied)
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
        metadata.insert(SENT_AT_HEADER, MetadataValue::from(now_unix_ms));
        if let Some(age) = self.since_quorum_ack() {
            // Read after the acknowledgement: it covers every write
            // acknowledged before it.
            let index = self.leader_index();
            let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
            let acked = now_unix_ms.saturating_sub(age_ms);
            metadata.insert(QUORUM_ACKED_HEADER, MetadataValue::from(acked));
            metadata.insert(LEADER_INDEX_HEADER, MetadataValue::from(index));
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

/// This site's clock less the sender's as the message left, in ms
/// (positive: this clock is ahead, or the message was in flight that
/// long); `None` without a parsable stamp.
pub fn clock_offset_ms(metadata: &MetadataMap, now_unix_ms: u64) -> Option<i64> {
    let sent: u64 = metadata.get(SENT_AT_HEADER)?.to_str().ok()?.parse().ok()?;
    Some(i64::try_from(now_unix_ms).ok()? - i64::try_from(sent).ok()?)
}

/// The index an incoming AppendEntries asks the follower to have applied
/// before it counts as fresh (see `LEADER_INDEX_HEADER`); `None` if absent
/// or unparsable.
pub fn leader_index(metadata: &MetadataMap) -> Option<u64> {
    metadata
        .get(LEADER_INDEX_HEADER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
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
        assert_eq!(leader_index(&metadata), None);
        metadata.insert(LEADER_INDEX_HEADER, MetadataValue::from(42u64));
        assert_eq!(leader_index(&metadata), Some(42));
        let unattached = LeaderAge::default();
        let mut outgoing = MetadataMap::new();
        unattached.stamp(&mut outgoing, 10_000);
        assert!(
            outgoing.get(QUORUM_ACKED_HEADER).is_none(),
            "no Raft yet: no acknowledgement claimed"
        );
        assert_eq!(clock_offset_ms(&outgoing, 10_250), Some(250));
        assert_eq!(clock_offset_ms(&outgoing, 9_900), Some(-100));
        assert_eq!(clock_offset_ms(&MetadataMap::new(), 9_900), None);
    }
}
