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

pub mod config;
pub mod dev;
pub mod error;
pub mod http;
pub mod leases;
pub mod peer;
pub mod recover;
pub mod scheduler;
pub mod server;
pub mod services;
pub mod site;

pub use error::NodeError;
pub use site::Site;
pub use site::SiteRaft;
pub use site::SiteSettings;
