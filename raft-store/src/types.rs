//! The openraft type configuration.

use crate::command::Proposal;
use crate::reply::Reply;
use crate::site_node::SiteNode;

openraft::declare_raft_types!(
    /// Switchboard's openraft types: proposals in, replies out, sites by `u64`.
    pub TypeConfig:
        D = Proposal,
        R = Reply,
        NodeId = u64,
        Node = SiteNode,
);

/// Openraft's log id with Switchboard's types.
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
/// A log entry.
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
/// A vote.
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
/// Membership as stored with the applied state.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
