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

    /// The encoded descriptors of every v1 file, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/switchboard_descriptor.bin"));

    /// The services of the API port, by their full gRPC names.
    pub const API_SERVICES: [&str; 4] = [
        "switchboard.v1.RelayService",
        "switchboard.v1.HostService",
        "switchboard.v1.ClientService",
        "switchboard.v1.AdminService",
    ];
}
