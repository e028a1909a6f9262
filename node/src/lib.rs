//! The `switchboard` daemon: everything that runs inside a site, and apart
//! from it the tools that run several sites on one machine.
//!
//! Layout:
//! - [`site`]: the running site every service shares (raft handle, applied
//!   state, peers), its write path and read paths, its staleness and its
//!   signing of node info and tickets.
//! - [`services`]: relay, host, client and admin services on the API port,
//!   identities and rate limits, route and node-info watches.
//! - [`peer`]: the Raft port: openraft's network over tonic, channels to
//!   other sites, and the peer service.
//! - [`leases`]: relay leases, batched heartbeats and the keeper tasks.
//! - [`scheduler`]: the leader's drains, maintenance windows and keeping
//!   leadership off drained sites.
//! - [`config`]: `site.toml`, its defaults and checks, and openraft's config.
//! - [`http`]: the HTTP plane: status page, metrics, health and readiness.
//! - [`server`]: `switchboard serve`: storage, Raft, the gRPC servers on the
//!   raft and API ports, the HTTP plane, bootstrap and a clean shutdown.
//! - [`recover`]: `switchboard recover`, a cluster of one from a survivor.
//! - [`dev`]: the launcher that runs sites as separate processes on this
//!   machine, `switchboard dev` and the simulator; no serving code imports it.

mod cert_expiry;
mod config;
mod customer_page;
mod dev;
mod error;
mod health;
mod http;
mod leases;
mod metric_catalog;
mod operator_page;
mod peer;
mod raft_counters;
mod recover;
mod request_metrics;
mod scheduler;
mod server;
mod services;
mod site;

pub use config::Limits;
pub use config::RelayTiming;
pub use config::SiteConfig;
pub use config::Snapshots;
pub use config::Timing;
pub use error::NodeError;
pub use http::HTTP_CONNECTIONS_MAX;
pub use http::HTTP_HEADER_READ_TIMEOUT;
pub use scheduler::SCHEDULER_TICK;
pub use server::serve;
pub use services::watch_slots::WATCHES_PER_IDENTITY_MAX;
pub use site::FORWARD_BATCH_PROPOSALS_MAX;
pub use site::unix_ms;

/// `switchboard recover`: a cluster of one from a surviving data dir.
pub mod recovery {
    pub use crate::recover::WARNING;
    pub use crate::recover::recover;
}

/// Several sites on this machine, as separate processes: the launcher the
/// tests and `switchboard dev` use, the demo and the relay/host simulator.
pub mod local {
    pub use crate::dev::demo::DevCluster;
    pub use crate::dev::demo::DevOptions;
    pub use crate::dev::demo::start as start_demo;
    pub use crate::dev::launcher::Bootstrap;
    pub use crate::dev::launcher::LAUNCHER_ADMIN;
    pub use crate::dev::launcher::LaunchSpec;
    pub use crate::dev::launcher::LocalCluster;
    pub use crate::dev::launcher::SiteHost;
    pub use crate::dev::sim::RelayBook;
    pub use crate::dev::sim::SimHost;
    pub use crate::dev::sim::SimOptions;
    pub use crate::dev::sim::SimRelay;
    pub use crate::dev::sim::run as run_sim;
}
