//! Integration tests against real multi-process clusters: separate
//! `switchboard serve` processes, RocksDB on disk, gRPC over loopback.
//! Tests run one at a time (the harness holds a lock per cluster).

mod dev;
mod durability;
mod exhaustion;
mod failover;
mod faults;
mod incident;
mod membership;
mod observability;
mod operations;
mod pages;
mod partitions;
mod prometheus;
mod reads;
mod relays;
mod sbctl;
mod security;
mod wan;
