//! Switchboard's `.proto` files and the tonic code generated from them, nothing else.
//!
//! Layout:
//! - `proto/switchboard/v1/peer.proto`: site-to-site traffic (openraft RPCs, forwarded
//!   writes, follower read index) on the raft port.
//! - `proto/switchboard/v1/api.proto`: relay, host, client and admin services on the API port.
//! - [`codec`]: prost with INVALID_ARGUMENT for messages that do not decode.

#![allow(clippy::large_enum_variant)]

pub mod codec;

/// Version 1 of the wire protocol.
pub mod v1 {
    tonic::include_proto!("switchboard.v1");
}
