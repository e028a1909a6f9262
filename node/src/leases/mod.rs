//! Relay leases: the table in the leader's memory, the heartbeats a
//! follower batches for the leader, and the keeper tasks that expire
//! leases, forward heartbeats and keep the signing key.

pub mod heartbeats;
pub mod keeper;
pub mod table;
