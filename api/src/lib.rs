//! Switchboard's gRPC services, the conversions between proto messages and
//! the domain, and the client library.
//!
//! Layout:
//! - [`site`]: the running site every service shares (raft handle, applied
//!   state, peers) and its write path (`propose`, forwarded to the leader)
//!   and read paths (local with staleness, linearizable).
//! - [`peer_service`]: the raft-port service (openraft RPCs, snapshot
//!   chunks, forwarded writes, read index).
//! - [`peer_clients`]: pooled channels to other sites.
//! - [`freshness`]: how stale this site's applied state is.
//! - [`services`]: relay, host, client and admin services on the API port.
//! - [`convert`]: proto <-> domain.
//! - [`client`]: the library sbctl and tests use to talk to a cluster.
//! - [`directory`]: seeds, cache and fetched node info, merged; trust in keys.
//! - [`cluster_file`]: `cluster.json`, where a cluster's sites are.
//! - [`limits`]: message sizes and other bounds, each with its reason.
//! - [`auth`]: identities from certificates and tokens, roles, rate limits.
//! - [`tls`]: rustls (ring) server and client configs, reloaded from files.
//! - [`pki`]: identity names in certificates; development CA and certificates.
//! - [`token`]: bearer tokens for hosts and clients.
//! - [`signing`]: Ed25519 node info and tickets, sealed keys, trust in keys.
//! - [`signer`]: a site's signing of node info and tickets.
//! - [`admission`]: a relay's offline checks of hosts and tickets.
//! - [`leases`]: relay leases, in the leader's memory.
//! - [`heartbeats`]: heartbeats a follower batches for the leader.
//! - [`watch`]: route and node-info watches over the change feed.

pub mod admission;
pub mod auth;
pub mod client;
pub mod cluster_file;
pub mod convert;
pub mod directory;
pub mod error;
pub mod freshness;
pub mod heartbeats;
pub mod leases;
pub mod limits;
pub mod peer_clients;
pub mod peer_service;
pub mod pki;
pub mod services;
pub mod signer;
pub mod signing;
pub mod site;
pub mod tls;
pub mod token;
pub mod watch;

pub use error::ApiError;
pub use site::Site;
pub use site::SiteRaft;
pub use site::SiteSettings;
