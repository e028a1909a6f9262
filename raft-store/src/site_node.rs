//! A site's membership record.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

/// What Raft membership keeps about each site: where to reach it and the
/// failure domains it sits in. The state machine keeps only what Raft does not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteNode {
    /// Its name, for people (status, node info).
    pub name: String,
    /// Raft peer traffic, `host:port`.
    pub raft_addr: String,
    /// Relay, host, client and admin APIs, `host:port`.
    pub api_addr: String,
    /// Status page, metrics and health, `host:port`.
    pub http_addr: String,
    /// Failure-domain labels (region, datacenter, power feed, uplink, ...).
    pub labels: BTreeMap<String, String>,
}
