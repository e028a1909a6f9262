//! Switchboard's client library: what a VPN host, relay, client or admin
//! tool embeds to talk to a cluster. It links neither RocksDB nor openraft
//! nor the server.
//!
//! Everything a caller needs is re-exported at the crate root; the modules
//! are private. Three stay public as namespaces: [`convert`] (proto <->
//! domain functions), [`limits`] and [`headers`] (constants), and [`tls`]
//! (the server and client TLS configs the daemon shares).
//!
//! Layout:
//! - `client`: the cluster client (retries across sites, leader hints),
//!   used by relays, hosts, clients, sbctl and the tests.
//! - `directory`: seeds, cache and fetched node info, merged; trust in keys.
//! - `cluster_file`: `cluster.json`, where a cluster's sites are.
//! - `admission`: a relay's offline checks of hosts and connect tickets.
//! - `signing`: Ed25519 node info and tickets, sealed keys, trust in keys.
//! - `token`: bearer tokens for hosts and clients.
//! - [`convert`]: proto <-> domain for what callers see.
//! - [`tls`]: rustls (ring) server and client configs, reloaded from files.
//! - `pki`: identity names in certificates; a development CA.
//! - [`limits`]: message sizes and other bounds, each with its reason.
//! - [`headers`]: gRPC metadata keys.
//! - `error`: the error every call returns, and its gRPC status.

mod admission;
mod client;
mod cluster_file;
pub mod connection;
pub mod convert;
mod directory;
mod error;
mod file_error;
pub mod headers;
pub mod limits;
pub mod per_source;
mod pki;
pub mod request_bytes;
mod signing;
pub mod tls;
mod token;

pub use admission::Admission;
pub use admission::AdmissionError;
pub use client::CATCH_UP_POLL_INTERVAL;
pub use client::ClientError;
pub use client::ClientSettings;
pub use client::ClusterClient;
pub use client::Credentials;
pub use client::Followed;
pub use client::Follower;
pub use client::RETRY_AFTER_MAX_MS;
pub use client::WatchMessage;
pub use client::new_request_id;
pub use cluster_file::ClusterFile;
pub use cluster_file::ClusterSite;
pub use cluster_file::ClusterTls;
pub use directory::CACHE_BYTES_MAX;
pub use directory::CACHE_FORMAT_VERSION;
pub use directory::CacheError;
pub use directory::CacheFile;
pub use directory::Directory;
pub use error::ApiError;
pub use file_error::FileError;
pub use file_error::KeyError;
pub use pki::CertificateAuthority;
pub use pki::CertificatePaths;
pub use pki::DEV_CERTIFICATE_DAYS;
pub use pki::DOMAIN_SUFFIX;
pub use pki::DevPki;
pub use pki::IssuedCertificate;
pub use pki::Role;
pub use pki::Validity;
pub use pki::cluster_domain;
pub use pki::identity_name;
pub use pki::parse_identity_name;
pub use pki::sites_name;
pub use pki::write_secret;
pub use signing::SigningKey;
pub use signing::StateKey;
pub use signing::TICKET_BYTES_MAX;
pub use signing::TICKET_FORMAT_VERSION;
pub use signing::TICKET_TAG;
pub use signing::Ticket;
pub use signing::TrustError;
pub use signing::TrustStore;
pub use signing::generate_signing_key;
pub use signing::seal_context;
pub use signing::verify;
pub use token::TOKEN_BYTES_MAX;
pub use token::TOKEN_KEY_BYTES_MIN;
pub use token::TOKEN_PREFIX;
pub use token::TOKEN_TTL_MAX_SECS;
pub use token::TokenClaims;
pub use token::TokenError;
pub use token::TokenKey;
pub use token::TokenRole;
