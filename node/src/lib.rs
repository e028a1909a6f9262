//! The `switchboard` daemon: one site of a Switchboard cluster, and the
//! launcher that runs several on one machine.
//!
//! Layout:
//! - [`config`]: `site.toml`, its defaults and checks, and openraft's config.
//! - [`server`]: `switchboard serve`: storage, Raft, the gRPC servers on the
//!   raft and API ports, the HTTP plane, bootstrap and a clean shutdown.
//! - [`raft_network`]: openraft's network over tonic.
//! - [`http`]: status page, metrics, health and readiness.
//! - [`lease_keeper`]: relay leases on the leader, heartbeat forwarding, the signing key.
//! - [`scheduler`]: the leader's drains, maintenance windows and keeping
//!   leadership off drained sites.
//! - [`recover`]: `switchboard recover`, a cluster of one from a survivor.
//! - [`launcher`]: runs sites as separate processes on this machine.
//! - [`dev`]: `switchboard dev`, the demo cluster.
//! - [`sim`]: simulated relays, hosts and clients (`switchboard sim`).

pub mod config;
pub mod dev;
pub mod error;
pub mod http;
pub mod launcher;
pub mod lease_keeper;
pub mod raft_network;
pub mod recover;
pub mod scheduler;
pub mod server;
pub mod sim;

pub use error::NodeError;
