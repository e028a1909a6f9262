//! The API-port services: relays, hosts, clients and operators.

mod admin;
pub mod auth;
mod client;
mod host;
mod relay;
pub mod watch;
pub mod watch_slots;

pub use admin::AdminApi;
pub use client::ClientApi;
pub use host::HostApi;
pub use relay::RelayApi;
use switchboard_raft_store::ids::RequestId;

use switchboard_api::ApiError;

/// The caller's request id, checked.
pub fn request_id(bytes: &[u8]) -> Result<RequestId, ApiError> {
    Ok(RequestId::from_bytes(bytes)?)
}
