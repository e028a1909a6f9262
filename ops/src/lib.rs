//! `sbctl`, the operator's command line for a Switchboard cluster.
//!
//! Layout:
//! - [`cli`]: the commands and flags (clap).
//! - [`run`](fn@run): carries a parsed command out against a cluster and
//!   writes a table for people or JSON for scripts.
//! - [`operations`]: drains, maintenance windows, backups, the topology
//!   check and the audit log.
//! - [`progress`]: progress lines for long operations.
//! - [`table`]: plain-text tables.
//! - [`untrusted`]: control characters in cluster text, escaped.
//!
//! The deploy files (systemd unit, example configs, Prometheus rules) and
//! the scripts README.md names live beside this crate in `ops/`.

mod cli;
mod commands;
mod operations;
mod progress;
mod table;
mod untrusted;

pub use cli::Cli;
pub use commands::CliError;
pub use commands::report;
pub use commands::run;
