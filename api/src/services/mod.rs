//! The API-port services: relays, hosts, clients and operators.

mod admin;
mod client;
mod host;
mod relay;

pub use admin::AdminApi;
pub use admin::LEADER_HINT_HEADER;
pub use admin::TRANSFER_LEADER_DEADLINE;
pub use admin::most_caught_up_voter;
pub use admin::transfer_leadership;
pub use client::ClientApi;
pub use host::HostApi;
pub use relay::RelayApi;
use switchboard_raft_store::ids::RequestId;

use crate::error::ApiError;

/// The caller's request id, checked.
pub fn request_id(bytes: &[u8]) -> Result<RequestId, ApiError> {
    Ok(RequestId::from_bytes(bytes)?)
}
