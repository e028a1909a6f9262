//! Site-to-site traffic on the Raft port: openraft's network over tonic,
//! pooled channels to the other sites, and the peer service that answers
//! them (Raft RPCs, snapshot chunks, forwarded writes, read index).

pub mod clients;
pub mod leader_age;
pub mod network;
pub mod service;
