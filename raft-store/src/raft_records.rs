//! Switchboard's own records of what openraft keeps and sends: log entries,
//! votes, log ids, membership and the peer messages.
//!
//! The log store, the state machine store and the raft port encode these
//! records (version byte, then postcard, as `wire` does), never openraft's
//! types, so an openraft upgrade that changes a serde derive cannot change
//! the log on disk or the peer protocol without a test failing here: every
//! record has golden bytes, and (with the `raft` feature) a test that it
//! still encodes exactly as openraft 0.10's types did, so data written
//! before these records existed reads unchanged.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

use crate::command::Proposal;
use crate::site_node::SiteNode;
use crate::snapshot_meta::LogPosition;

/// A vote: the leader it is for (term and node) and whether a quorum
/// granted it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteRecord {
    /// The term.
    pub term: u64,
    /// The site voted for.
    pub node_id: u64,
    /// Granted by a quorum.
    pub committed: bool,
}

/// A membership config: voter sets (two during a joint change) and every
/// member's node record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipConfigRecord {
    /// Voter sets.
    pub configs: Vec<BTreeSet<u64>>,
    /// Every member, voter or learner.
    pub nodes: BTreeMap<u64, SiteNode>,
}

/// What a log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayloadRecord {
    /// A new leader's first entry.
    Blank,
    /// A proposal (in its own versioned encoding).
    Normal(Proposal),
    /// A membership change.
    Membership(MembershipConfigRecord),
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRecord {
    /// Its position.
    pub log_id: LogPosition,
    /// What it carries.
    pub payload: PayloadRecord,
}

/// AppendEntries, leader to follower.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntriesRecord {
    /// The leader's vote.
    pub vote: VoteRecord,
    /// The entry just before `entries`.
    pub prev_log_id: Option<LogPosition>,
    /// Entries to append.
    pub entries: Vec<EntryRecord>,
    /// The leader's commit index.
    pub leader_commit: Option<LogPosition>,
}

/// A follower's answer to AppendEntries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendEntriesReplyRecord {
    /// Every entry appended.
    Success,
    /// Entries up to this one appended.
    PartialSuccess(Option<LogPosition>),
    /// `prev_log_id` does not match.
    Conflict,
    /// The follower saw a higher vote.
    HigherVote(VoteRecord),
}

/// A vote request (or pre-vote).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteRequestRecord {
    /// The candidate's vote.
    pub vote: VoteRecord,
    /// The candidate's last log id.
    pub last_log_id: Option<LogPosition>,
    /// Asked for by a leader handing over.
    pub leadership_transfer: bool,
}

/// The answer to a vote request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteReplyRecord {
    /// The voter's vote now.
    pub vote: VoteRecord,
    /// Whether it voted for the candidate.
    pub vote_granted: bool,
    /// The voter's last log id.
    pub last_log_id: Option<LogPosition>,
}

/// A leader asks a follower to take over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferLeaderRecord {
    /// The leader's vote.
    pub from_leader: VoteRecord,
    /// The site to take over.
    pub to_node_id: u64,
    /// The leader's last log id.
    pub last_log_id: Option<LogPosition>,
}

/// A follower's answer to a leadership transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferLeaderReplyRecord {
    /// It takes over.
    Accepted,
    /// It does not, and why.
    Refused(TransferRefusalRecord),
}

/// Why a follower refused to take over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferRefusalRecord {
    /// It saw another vote than the leader's.
    VoteChanged {
        /// The leader's vote, as the request carried it.
        expected: VoteRecord,
        /// The vote the follower has.
        actual: VoteRecord,
    },
    /// It has not flushed the leader's log yet.
    LogNotFlushed {
        /// The leader's last log id.
        expected: Option<LogPosition>,
        /// The follower's.
        actual: Option<LogPosition>,
    },
}

/// The answer to a snapshot install.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotReplyRecord {
    /// The receiver's vote.
    pub vote: VoteRecord,
}

#[cfg(feature = "raft")]
pub use conversions::Recorded;
#[cfg(feature = "raft")]
pub use conversions::decode;
#[cfg(feature = "raft")]
pub use conversions::encode;

#[cfg(feature = "raft")]
mod conversions;

#[cfg(test)]
mod tests;
