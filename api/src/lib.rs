//! Switchboard's client library: what a VPN host, relay, client or admin
//! tool embeds to talk to a cluster. It links neither RocksDB nor openraft
//! nor the server.
//!
//! Layout:
//! - [`client`]: the cluster client (retries across sites, leader hints),
//!   used by relays, hosts, clients, sbctl and the tests.
//! - [`directory`]: seeds, cache and fetched node info, merged; trust in keys.
//! - [`cluster_file`]: `cluster.json`, where a cluster's sites are.
//! - [`admission`]: a relay's offline checks of hosts and connect tickets.
//! - [`signing`]: Ed25519 node info and tickets, sealed keys, trust in keys.
//! - [`token`]: bearer tokens for hosts and clients.
//! - [`convert`]: proto <-> domain for what callers see.
//! - [`tls`]: rustls (ring) server and client configs, reloaded from files.
//! - [`pki`]: identity names in certificates; a development CA.
//! - [`limits`]: message sizes and other bounds, each with its reason.
//! - [`headers`]: gRPC metadata keys.
//! - [`error`]: the error every call returns, and its gRPC status.

pub mod admission;
pub mod client;
pub mod cluster_file;
pub mod convert;
pub mod directory;
pub mod error;
pub mod headers;
pub mod limits;
pub mod pki;
pub mod signing;
pub mod tls;
pub mod token;

pub use error::ApiError;
