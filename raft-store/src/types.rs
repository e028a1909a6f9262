//! The openraft type configuration.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

use crate::command::Proposal;
use crate::reply::Reply;

/// What Raft membership keeps about each site: where to reach it and the
/// failure domains it sits in. The state machine keeps only what Raft does not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteNode {
    pub name: String,
    /// Raft peer traffic, `host:port`.
    pub raft_addr: String,
    /// Relay, host, client and admin APIs, `host:port`.
    pub api_addr: String,
    /// Status page, metrics and health, `host:port`.
    pub http_addr: String,
    /// Failure-domain labels (region, datacenter, power feed, uplink, ...).
    pub labels: BTreeMap<String, String>,
}

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
