//! Switchboard's replicated state: the commands of the Raft log, the pure
//! state machine that applies them, and (with the `rocksdb` feature) the
//! RocksDB storage openraft runs on. Nothing here knows of gRPC.
//!
//! Layout:
//! - [`ids`]: identifiers and input validation.
//! - [`command`]: `Proposal` and `Command`, with their versioned binary encoding.
//! - [`reply`]: what applying a command answers.
//! - [`request`]: commands paired with the type of their answer.
//! - [`node_info`]: the node-info document, built from the state.
//! - [`safety`]: the rule that keeps admin steps from costing quorum.
//! - [`drain_plan`], [`maintenance_plan`]: the pace of drains and the steps
//!   of maintenance windows, for the leader to propose.
//! - [`topology`]: single failure domains that would cost quorum or capacity.
//! - [`snapshot_file`], [`snapshot_meta`]: the snapshot (and backup) file
//!   format and Switchboard's own record of what a snapshot covers.
//! - [`site_node`]: a site's membership record.
//! - [`state`]: the pure state machine (`State::apply`), placement, rows.
//! - [`types`] (feature `raft`): the openraft type configuration.
//! - [`wire`]: the versioned binary encoding (version byte, then postcard).
//! - [`raft_records`]: Switchboard's records of openraft's entries, votes,
//!   log ids, membership and peer messages, for disk and the raft port.
//! - [`store`] (feature `rocksdb`): log store, state machine store, snapshots,
//!   the group-commit writer thread and the data-dir identity.

pub mod command;
pub mod drain_plan;
mod error;
pub mod ids;
pub mod maintenance_plan;
pub mod node_info;
pub mod raft_records;
pub mod reply;
pub mod request;
pub mod safety;
mod site_node;
pub mod snapshot_file;
mod snapshot_meta;
pub mod state;
pub mod topology;
#[cfg(feature = "raft")]
pub mod types;
pub mod wire;

#[cfg(feature = "rocksdb")]
pub mod store;

#[cfg(test)]
mod fuzz_tests;

pub use command::Actor;
pub use command::ActorKind;
pub use command::Command;
pub use command::Proposal;
pub use error::Error;
pub use reply::Outcome;
pub use reply::Reply;
pub use request::Applied;
pub use request::Request;
pub use site_node::SiteNode;
pub use snapshot_meta::LogPosition;
pub use snapshot_meta::MembershipRecord;
pub use snapshot_meta::SnapshotMetaRecord;
pub use state::State;
#[cfg(feature = "raft")]
pub use types::TypeConfig;
