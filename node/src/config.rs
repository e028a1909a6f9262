//! The site configuration file (`site.toml`).
//!
//! Every field has a default except the ones that name the site. See
//! `ops/deploy/site.example.toml` for a documented example.

use std::collections::BTreeMap;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::Serialize;
use switchboard_api::limits::RAFT_ENTRIES_PER_MESSAGE_MAX;
use switchboard_raft_store::ids::validate_endpoint;
use switchboard_raft_store::ids::validate_labels;

use crate::error::NodeError;

/// One site's configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// The site's Raft node id: unique in the cluster, never reused, at least 1.
    pub id: u64,
    /// A short human name, shown in status (e.g. the datacenter).
    pub name: String,
    /// The cluster this site belongs to. Recorded in the data dir on first
    /// start; a site refuses a data dir of another cluster or site.
    pub cluster_id: String,
    /// Where the Raft log, the state and snapshots live.
    pub data_dir: PathBuf,
    /// `host:port` for Raft traffic between sites. Port 0 picks a free port.
    pub raft_addr: String,
    /// `host:port` for the relay, host, client and admin APIs.
    pub api_addr: String,
    /// `host:port` for the status page, `/metrics`, `/healthz`, `/readyz`.
    pub http_addr: String,
    /// Host name other sites and clients use to reach this site, when it
    /// differs from the bind address (e.g. binding 0.0.0.0). Default: the
    /// host of each bind address.
    #[serde(default)]
    pub advertise_host: Option<String>,
    /// Failure-domain labels: region, datacenter, power feed, uplink, ...
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Raft, write, read and lease timing.
    #[serde(default)]
    pub timing: Timing,
    /// When to build snapshots and purge the log.
    #[serde(default)]
    pub snapshots: Snapshots,
    /// Mutual TLS on the raft and API ports (rustls, ring). Required unless
    /// `insecure` is set.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Serve plaintext with no authentication at all. Development only;
    /// never on a network anyone else can reach. Default false.
    #[serde(default)]
    pub insecure: bool,
    /// Message sizes, rates and connection limits.
    #[serde(default)]
    pub limits: Limits,
    /// Hex AES-256 key that seals the node-info signing key in the replicated
    /// state: the same file on every site. Without it the site cannot sign
    /// node info or connect tickets. Default: none.
    #[serde(default)]
    pub state_key_file: Option<PathBuf>,
    /// Relay leases and heartbeats.
    #[serde(default)]
    pub relays: RelayTiming,
    /// Initial voters, for a cluster formed from config files: every listed
    /// site that starts on an empty data dir proposes the same membership.
    /// Leave empty when the cluster is initialized through the admin API.
    #[serde(default)]
    pub initial_sites: Vec<InitialSite>,
}

/// Raft and request timing, in milliseconds.
///
/// Defaults suit sites whose round trip is up to ~20 ms. For a WAN with
/// round-trip time R: keep `heartbeat_ms` at 2R or more (at least 100),
/// `election_min_ms` at 5 to 10 heartbeats, and `election_max_ms` at about
/// twice `election_min_ms`. The followers refuse any election until the
/// leader lease (`election_max_ms` since its last heartbeat) runs out, then
/// the first survivor asks one heartbeat later (`site::election_nudge`), so
/// failover takes about `election_max_ms` + 1 to 2 `heartbeat_ms` plus a
/// vote round: shorter timeouts mean faster failover but spurious elections
/// when the WAN hiccups.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timing {
    /// Leader heartbeat interval. Default 100.
    pub heartbeat_ms: u64,
    /// Lower bound of the election timeout. Default 500.
    pub election_min_ms: u64,
    /// Upper bound of the election timeout; also the leader lease. Default 1000.
    pub election_max_ms: u64,
    /// How long a write may wait for a leader and a commit. Default 5000.
    pub write_deadline_ms: u64,
    /// How long a linearizable read may wait. Default 3000.
    pub read_deadline_ms: u64,
    /// How long a snapshot may take to send and install. Default 120000.
    pub install_snapshot_timeout_ms: u64,
    /// The staleness a local read may have when its caller names no bound
    /// (max_stale_ms 0). Default 10000, a relay lease: a route staler than
    /// that may name a relay already declared down and its hosts moved. A
    /// site that has not heard from a leader since it started serves no
    /// local read at all, whatever the bound.
    pub local_read_stale_ms_max: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat_ms: 100,
            election_min_ms: 500,
            election_max_ms: 1000,
            write_deadline_ms: 5000,
            read_deadline_ms: 3000,
            install_snapshot_timeout_ms: 120_000,
            local_read_stale_ms_max: 10_000,
        }
    }
}

impl Timing {
    /// LAN timing used by tests and `switchboard dev`.
    pub fn lan() -> Self {
        Timing {
            heartbeat_ms: 50,
            election_min_ms: 300,
            election_max_ms: 500,
            ..Timing::default()
        }
    }

    /// The longest a cluster can go without a leader after the leader dies,
    /// in the common case: the last heartbeat, the followers' lease
    /// (`election_max`), their election timeout (below `election_max`), and
    /// one retry of a split vote (`election_max`).
    pub fn failover_bound(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms + 3 * self.election_max_ms)
    }
}

/// Certificate files, all PEM. Identities are DNS names in the
/// certificates: `<id>.<role>.<cluster_id>.switchboard` (see `sbctl certs`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate(s) that sign every identity of the cluster.
    pub ca_file: PathBuf,
    /// This site's certificate: names `<id>.site.<cluster_id>.switchboard`
    /// and `sites.<cluster_id>.switchboard`.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Hex HMAC key for host and client bearer tokens, the same file on every
    /// site. With it the API port also takes callers without a certificate
    /// that bring a token; without it every caller needs a certificate.
    #[serde(default)]
    pub token_key_file: Option<PathBuf>,
    /// How often the files are checked for changes (they reload without a
    /// restart). Default 5000.
    #[serde(default = "default_reload_interval_ms")]
    pub reload_interval_ms: u64,
}

fn default_reload_interval_ms() -> u64 {
    5_000
}

/// Relay leases and tickets, in milliseconds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayTiming {
    /// A relay without an acknowledged heartbeat for this long is marked
    /// down and its hosts re-placed; the relay itself stops admitting new
    /// clients. Relays heartbeat every quarter of it. Default 10000.
    pub lease_ttl_ms: u64,
    /// A follower forwards the heartbeats it received once per this
    /// interval, in one batch. Default 200.
    pub heartbeat_forward_interval_ms: u64,
    /// How long a connect ticket is valid. Default 60000.
    pub ticket_ttl_ms: u64,
    /// Pace of a drain that names none: a maintenance window's, or one
    /// started without `--rate`. Hosts moved per second; each moved host
    /// reconnects to its new relay, so the pace bounds the reconnect storm
    /// the relays take. Default 100.
    pub drain_hosts_per_second: u32,
}

impl Default for RelayTiming {
    fn default() -> Self {
        RelayTiming {
            lease_ttl_ms: 10_000,
            heartbeat_forward_interval_ms: 200,
            ticket_ttl_ms: 60_000,
            drain_hosts_per_second: 100,
        }
    }
}

/// What one caller may cost a site: per identity, per connection, per
/// source address, per port. Every default has its reason beside the
/// constant it comes from (`switchboard_api::limits`, `switchboard_api::tls`,
/// `crate::http`, `crate::services::watch_slots`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Sustained requests per second per relay, host or client. Default 200.
    pub requests_per_second: u32,
    /// Requests one identity may send at once above the rate. Default 400.
    pub request_burst: u32,
    /// Longest a TLS handshake may take (raft and API ports). Default 10000.
    pub tls_handshake_timeout_ms: u64,
    /// TLS handshakes in progress at once per port. Default 256.
    pub tls_handshakes_max: usize,
    /// TLS handshakes in progress at once from one source address; past
    /// it a new socket is closed at once. Default 32.
    pub tls_handshakes_per_source_max: usize,
    /// Connections open at once from one source address (raft and API
    /// ports); past it a new socket is closed at once. Default 256: hosts
    /// behind one NAT share an address.
    pub connections_per_source_max: usize,
    /// Request bytes one API connection may have buffered at once before
    /// decoding; past it a request gets RESOURCE_EXHAUSTED. Default 1048576.
    pub request_bytes_in_flight_per_connection_max: usize,
    /// Longest an API call may take until its response starts (reading the
    /// request included). Default 30000.
    pub request_timeout_ms: u64,
    /// HTTP/2 streams open at once per API connection (watches are
    /// streams; a gateway may hold thousands). Default 8192.
    pub streams_per_connection_max: u32,
    /// HTTP/2 keepalive ping interval to API callers. Default 10000.
    pub keepalive_interval_ms: u64,
    /// How long a keepalive ping may go unanswered before the caller is
    /// dropped, with its watches. Default 10000.
    pub keepalive_timeout_ms: u64,
    /// Watch streams one relay, host or client identity may hold on this
    /// site (operators exempt). Default 32.
    pub watches_per_identity_max: usize,
    /// Watch streams this site holds at once. Default 100000.
    pub watches_per_site_max: usize,
    /// Connections the HTTP plane holds at once. Default 512.
    pub http_connections_max: usize,
    /// How long an HTTP caller may take to send its request headers.
    /// Default 5000.
    pub http_header_read_timeout_ms: u64,
    /// Longest life of one HTTP connection. Default 60000.
    pub http_connection_lifetime_ms: u64,
    /// Longest maintenance window this site accepts, at most
    /// `MAINTENANCE_WINDOW_MS_CEILING` (31 days). Default a week.
    pub maintenance_window_ms_max: u64,
    /// Furthest ahead a maintenance window may start, at most
    /// `MAINTENANCE_LEAD_MS_CEILING` (a year). Default a year.
    pub maintenance_lead_ms_max: u64,
}

impl Default for Limits {
    fn default() -> Self {
        use switchboard_api::limits as api;
        use switchboard_raft_store::command;
        let connection = api::ConnectionLimits::default();
        Limits {
            requests_per_second: 200,
            request_burst: 400,
            tls_handshake_timeout_ms: millis(connection.handshake_timeout),
            tls_handshakes_max: connection.handshakes_max,
            tls_handshakes_per_source_max: connection.handshakes_per_source_max,
            connections_per_source_max: connection.connections_per_source_max,
            request_bytes_in_flight_per_connection_max: connection.request_bytes_in_flight_max,
            request_timeout_ms: millis(api::API_REQUEST_TIMEOUT),
            streams_per_connection_max: api::STREAMS_PER_CONNECTION_MAX,
            keepalive_interval_ms: millis(api::API_KEEPALIVE_INTERVAL),
            keepalive_timeout_ms: millis(api::API_KEEPALIVE_TIMEOUT),
            watches_per_identity_max: crate::services::watch_slots::WATCHES_PER_IDENTITY_MAX,
            watches_per_site_max: crate::services::watch_slots::WATCHES_PER_SITE_MAX,
            http_connections_max: crate::http::HTTP_CONNECTIONS_MAX,
            http_header_read_timeout_ms: millis(crate::http::HTTP_HEADER_READ_TIMEOUT),
            http_connection_lifetime_ms: millis(crate::http::HTTP_CONNECTION_LIFETIME),
            maintenance_window_ms_max: command::MAINTENANCE_WINDOW_MS_DEFAULT,
            maintenance_lead_ms_max: command::MAINTENANCE_LEAD_MS_CEILING,
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Limits {
    /// What the raft and API ports allow each connection and source.
    pub fn connection_limits(&self) -> switchboard_api::limits::ConnectionLimits {
        switchboard_api::limits::ConnectionLimits {
            handshake_timeout: Duration::from_millis(self.tls_handshake_timeout_ms),
            handshakes_max: self.tls_handshakes_max,
            handshakes_per_source_max: self.tls_handshakes_per_source_max,
            connections_per_source_max: self.connections_per_source_max,
            request_bytes_in_flight_max: self.request_bytes_in_flight_per_connection_max,
        }
    }

    /// What the HTTP plane allows.
    pub fn http_limits(&self) -> crate::http::HttpLimits {
        crate::http::HttpLimits {
            connections_max: self.http_connections_max,
            header_read_timeout: Duration::from_millis(self.http_header_read_timeout_ms),
            connection_lifetime: Duration::from_millis(self.http_connection_lifetime_ms),
        }
    }

    fn validate(&self) -> Result<(), String> {
        use switchboard_raft_store::command;
        let at_least_one = [
            ("requests_per_second", u64::from(self.requests_per_second)),
            ("request_burst", u64::from(self.request_burst)),
            ("tls_handshake_timeout_ms", self.tls_handshake_timeout_ms),
            ("tls_handshakes_max", self.tls_handshakes_max as u64),
            (
                "tls_handshakes_per_source_max",
                self.tls_handshakes_per_source_max as u64,
            ),
            (
                "connections_per_source_max",
                self.connections_per_source_max as u64,
            ),
            ("request_timeout_ms", self.request_timeout_ms),
            (
                "streams_per_connection_max",
                u64::from(self.streams_per_connection_max),
            ),
            ("keepalive_interval_ms", self.keepalive_interval_ms),
            ("keepalive_timeout_ms", self.keepalive_timeout_ms),
            (
                "watches_per_identity_max",
                self.watches_per_identity_max as u64,
            ),
            ("watches_per_site_max", self.watches_per_site_max as u64),
            ("http_connections_max", self.http_connections_max as u64),
            (
                "http_header_read_timeout_ms",
                self.http_header_read_timeout_ms,
            ),
            (
                "http_connection_lifetime_ms",
                self.http_connection_lifetime_ms,
            ),
            ("maintenance_window_ms_max", self.maintenance_window_ms_max),
            ("maintenance_lead_ms_max", self.maintenance_lead_ms_max),
        ];
        if let Some((name, _)) = at_least_one.iter().find(|(_, value)| *value == 0) {
            return Err(format!("limits.{name} must be at least 1"));
        }
        if self.tls_handshakes_per_source_max > self.tls_handshakes_max {
            return Err(format!(
                "limits.tls_handshakes_per_source_max ({}) must be at most limits.tls_handshakes_max ({})",
                self.tls_handshakes_per_source_max, self.tls_handshakes_max
            ));
        }
        if self.request_bytes_in_flight_per_connection_max
            < switchboard_api::limits::API_REQUEST_BYTES_MAX
        {
            return Err(format!(
                "limits.request_bytes_in_flight_per_connection_max must be at least the largest request ({} bytes)",
                switchboard_api::limits::API_REQUEST_BYTES_MAX
            ));
        }
        if self.maintenance_window_ms_max > command::MAINTENANCE_WINDOW_MS_CEILING {
            return Err(format!(
                "limits.maintenance_window_ms_max must be at most {} (31 days)",
                command::MAINTENANCE_WINDOW_MS_CEILING
            ));
        }
        if self.maintenance_lead_ms_max > command::MAINTENANCE_LEAD_MS_CEILING {
            return Err(format!(
                "limits.maintenance_lead_ms_max must be at most {} (a year)",
                command::MAINTENANCE_LEAD_MS_CEILING
            ));
        }
        Ok(())
    }
}

/// When snapshots are taken and how much log is kept behind them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Snapshots {
    /// Take a snapshot after this many entries since the last one. Default
    /// 100000, as etcd's `--snapshot-count`: a snapshot writes the whole
    /// state (seconds at a million routes), so it must be rare next to the
    /// writes; the price is a longer log to replay after a crash (the applied
    /// state is not synced) and a longer log kept on disk.
    pub logs_since_last: u64,
    /// Entries kept in the log behind a snapshot, so a briefly lagging site
    /// catches up from the log instead of a snapshot. Default 1000.
    pub logs_kept: u64,
}

impl Default for Snapshots {
    fn default() -> Self {
        Snapshots {
            logs_since_last: 100_000,
            logs_kept: 1_000,
        }
    }
}

/// One initial voter.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitialSite {
    pub id: u64,
    pub name: String,
    pub raft_addr: String,
    pub api_addr: String,
    pub http_addr: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl SiteConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, NodeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| NodeError::Config(format!("reading {}: {e}", path.display())))?;
        let config: SiteConfig = toml::from_str(&text)
            .map_err(|e| NodeError::Config(format!("{}: {e}", path.display())))?;
        config.validate()?;
        Ok(config)
    }

    /// Writes the config as TOML.
    pub fn save(&self, path: &Path) -> Result<(), NodeError> {
        let text = toml::to_string_pretty(self).map_err(|e| NodeError::Config(e.to_string()))?;
        std::fs::write(path, text)
            .map_err(|e| NodeError::Config(format!("writing {}: {e}", path.display())))
    }

    /// Checks every field; the message names the field and the fix.
    // Over 100 lines on purpose: one short check per field, in the order of
    // site.example.toml, so a reader finds a field's rule where it expects it.
    pub fn validate(&self) -> Result<(), NodeError> {
        let bad = |message: String| Err(NodeError::Config(message));
        if self.id == 0 {
            return bad("id must be at least 1".into());
        }
        if let Err(error) = switchboard_raft_store::ids::validate_site_name(&self.name) {
            return bad(error.to_string());
        }
        if self.cluster_id.is_empty()
            || self.cluster_id.len() > 64
            || !self
                .cluster_id
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-')
        {
            return bad("cluster_id must be 1 to 64 letters, digits or '-'".into());
        }
        for (field, addr) in [
            ("raft_addr", &self.raft_addr),
            ("api_addr", &self.api_addr),
            ("http_addr", &self.http_addr),
        ] {
            // Port 0 is allowed here: it asks for any free port.
            let checked = addr.replace(":0", ":1");
            validate_endpoint(field, if addr.ends_with(":0") { &checked } else { addr })
                .map_err(|e| NodeError::Config(e.to_string()))?;
        }
        validate_labels(&self.labels).map_err(|e| NodeError::Config(e.to_string()))?;
        let t = &self.timing;
        if t.heartbeat_ms == 0 || t.election_min_ms <= 2 * t.heartbeat_ms {
            return bad(format!(
                "timing: election_min_ms ({}) must be more than twice heartbeat_ms ({})",
                t.election_min_ms, t.heartbeat_ms
            ));
        }
        if t.election_max_ms <= t.election_min_ms {
            return bad(format!(
                "timing: election_max_ms ({}) must be more than election_min_ms ({})",
                t.election_max_ms, t.election_min_ms
            ));
        }
        if t.write_deadline_ms < t.election_max_ms || t.read_deadline_ms < t.election_max_ms {
            return bad("timing: write and read deadlines must be at least election_max_ms, to outlast an election".into());
        }
        match (&self.tls, self.insecure) {
            (None, false) => {
                return bad("no [tls] section: mutual TLS is required (set insecure = true for plaintext, development only)".into());
            }
            (Some(_), true) => return bad("both [tls] and insecure = true: choose one".into()),
            (Some(tls), false) if tls.reload_interval_ms == 0 => {
                return bad("tls.reload_interval_ms must be at least 1".into());
            }
            _ => {}
        }
        let relays = &self.relays;
        if relays.heartbeat_forward_interval_ms == 0
            || relays.lease_ttl_ms < 4 * relays.heartbeat_forward_interval_ms
        {
            return bad(format!(
                "relays.lease_ttl_ms ({}) must be at least 4 x relays.heartbeat_forward_interval_ms ({})",
                relays.lease_ttl_ms, relays.heartbeat_forward_interval_ms
            ));
        }
        if relays.lease_ttl_ms < 2 * self.timing.election_max_ms {
            return bad(format!(
                "relays.lease_ttl_ms ({}) must be at least 2 x timing.election_max_ms ({}), so an election does not cost relays their leases",
                relays.lease_ttl_ms, self.timing.election_max_ms
            ));
        }
        let rates = switchboard_raft_store::command::DRAIN_RATE_MIN
            ..=switchboard_raft_store::command::DRAIN_RATE_MAX;
        if !rates.contains(&relays.drain_hosts_per_second) {
            return bad(format!(
                "relays.drain_hosts_per_second must be {} to {}",
                rates.start(),
                rates.end()
            ));
        }
        if relays.ticket_ttl_ms == 0 {
            return bad("relays.ticket_ttl_ms must be at least 1".into());
        }
        self.limits.validate().map_err(NodeError::Config)?;
        if self.snapshots.logs_since_last == 0 {
            return bad("snapshots.logs_since_last must be at least 1".into());
        }
        let mut ids = std::collections::BTreeSet::new();
        for site in &self.initial_sites {
            if !ids.insert(site.id) {
                return bad(format!("initial_sites lists site {} twice", site.id));
            }
        }
        if !self.initial_sites.is_empty() && !ids.contains(&self.id) {
            return bad(format!(
                "initial_sites does not list this site ({})",
                self.id
            ));
        }
        Ok(())
    }

    /// openraft's configuration for this site.
    pub fn raft_config(&self) -> Result<openraft::Config, NodeError> {
        let t = &self.timing;
        let config = openraft::Config {
            cluster_name: self.cluster_id.clone(),
            heartbeat_interval: t.heartbeat_ms,
            election_timeout_min: t.election_min_ms,
            election_timeout_max: t.election_max_ms,
            install_snapshot_timeout: t.install_snapshot_timeout_ms,
            max_payload_entries: RAFT_ENTRIES_PER_MESSAGE_MAX,
            // A follower further behind than this gets a snapshot.
            replication_lag_threshold: self.snapshots.logs_since_last.max(5_000),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(
                self.snapshots.logs_since_last,
            ),
            max_in_snapshot_log_to_keep: self.snapshots.logs_kept,
            purge_batch_size: 256,
            // A site that was cut off cannot disturb a healthy leader when it returns.
            enable_pre_vote: Some(true),
            // A restarted leader must win an election again: its applied state
            // is written without fsync and may be behind what it committed.
            enable_leader_restore: Some(false),
            // A new entry goes to the followers as soon as it is written here,
            // while its fsync runs (not after the next loop of the core): one
            // fewer wait on a write's path (A/B, 128 clients: +14% writes/s).
            broadcast_submitted_on_append: Some(true),
            // Replication to a site that failed is retried every heartbeat
            // (openraft's default doubles from 200 ms to 1 s): a follower
            // whose link heals is caught up within a heartbeat, not a
            // second later. A retry costs a connection attempt, bounded by
            // the peer connect timeout, as the heartbeats already do.
            backoff: format!("{h}ms {h}ms ...{h}ms", h = t.heartbeat_ms),
            ..openraft::Config::default()
        };
        config
            .validate()
            .map_err(|e| NodeError::Config(format!("raft timing: {e}")))
    }

    /// Request deadlines and lease for the API.
    pub fn site_settings(&self) -> crate::site::SiteSettings {
        crate::site::SiteSettings {
            write_deadline: Duration::from_millis(self.timing.write_deadline_ms),
            read_deadline: Duration::from_millis(self.timing.read_deadline_ms),
            leader_lease: Duration::from_millis(self.timing.election_max_ms),
            election_nudge_spacing: Duration::from_millis(self.timing.heartbeat_ms),
            local_read_stale_max: Duration::from_millis(self.timing.local_read_stale_ms_max),
            relay_lease_ttl: Duration::from_millis(self.relays.lease_ttl_ms),
            heartbeat_forward_interval: Duration::from_millis(
                self.relays.heartbeat_forward_interval_ms,
            ),
            ticket_ttl: Duration::from_millis(self.relays.ticket_ttl_ms),
            drain_hosts_per_second: self.relays.drain_hosts_per_second,
            request_timeout: Duration::from_millis(self.limits.request_timeout_ms),
            maintenance_window_ms_max: self.limits.maintenance_window_ms_max,
            maintenance_lead_ms_max: self.limits.maintenance_lead_ms_max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> &'static str {
        r#"
id = 1
name = "tokyo"
cluster_id = "prod-1"
data_dir = "/var/lib/switchboard"
raft_addr = "10.0.0.1:7000"
api_addr = "10.0.0.1:7001"
http_addr = "10.0.0.1:7002"
[tls]
ca_file = "/etc/switchboard/ca.pem"
cert_file = "/etc/switchboard/site.pem"
key_file = "/etc/switchboard/site.key"
"#
    }

    #[test]
    fn a_minimal_config_gets_documented_defaults() {
        let config: SiteConfig = toml::from_str(minimal()).unwrap();
        config.validate().unwrap();
        assert_eq!(config.timing.heartbeat_ms, 100);
        assert_eq!(config.timing.election_max_ms, 1000);
        assert_eq!(config.snapshots.logs_since_last, 100_000);
        let raft = config.raft_config().unwrap();
        assert_eq!(raft.election_timeout_max, 1000);
        let retries: Vec<Duration> = raft.build_backoff().take(6).collect();
        assert_eq!(
            retries,
            vec![Duration::from_millis(100); 6],
            "replication to a failed site is retried every heartbeat"
        );
    }

    /// The documented example must stay a valid config.
    #[test]
    fn the_example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/deploy/site.example.toml");
        let config = SiteConfig::load(&path).unwrap();
        assert_eq!(config.initial_sites.len(), 3);
        assert_eq!(
            config.labels.get("power-feed").map(String::as_str),
            Some("tokyo-1-a")
        );
        config.raft_config().unwrap();
        assert_eq!(
            serde_json::to_value(&config.limits).unwrap(),
            serde_json::to_value(Limits::default()).unwrap(),
            "the example documents every limit at its default"
        );
    }

    #[test]
    fn plaintext_needs_the_explicit_insecure_setting() {
        let without_tls = minimal().split("[tls]").next().unwrap().to_owned();
        let config: SiteConfig = toml::from_str(&without_tls).unwrap();
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("insecure"), "{message}");
        let config: SiteConfig =
            toml::from_str(&format!("insecure = true\n{without_tls}")).unwrap();
        config.validate().unwrap();
    }

    #[test]
    fn bad_configs_name_the_field() {
        let mut config: SiteConfig = toml::from_str(minimal()).unwrap();
        config.timing.election_min_ms = 150;
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("election_min_ms"), "{message}");

        let unknown = minimal().replace("[tls]", "heartbeat = 5\n[tls]");
        let error = toml::from_str::<SiteConfig>(&unknown)
            .unwrap_err()
            .to_string();
        assert!(error.contains("heartbeat"), "{error}");

        let mut config: SiteConfig = toml::from_str(minimal()).unwrap();
        config.raft_addr = "nowhere".into();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("raft_addr")
        );
    }
}
