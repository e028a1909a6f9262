//! sbctl's commands and flags.

use std::path::PathBuf;

use clap::Args;
use clap::Parser;
use clap::Subcommand;

/// sbctl's command line: where the cluster is, the output form, the command.
#[derive(Parser, Debug)]
#[command(name = "sbctl", version, about = "Operate a Switchboard cluster")]
pub struct Cli {
    /// Where the cluster is and how to reach it.
    #[command(flatten)]
    pub target: Target,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where the cluster is.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Sites' API addresses, comma separated (host:port,...).
    #[arg(long, global = true, value_delimiter = ',', env = "SBCTL_ENDPOINTS")]
    pub endpoints: Vec<String>,
    /// A cluster.json naming the sites (as `switchboard dev` writes).
    #[arg(long, global = true, env = "SBCTL_CLUSTER")]
    pub cluster: Option<PathBuf>,
    /// CA certificate to trust (default: from --cluster's file).
    #[arg(long, global = true, env = "SBCTL_CA")]
    pub ca: Option<PathBuf>,
    /// Client certificate (default: from --cluster's file).
    #[arg(long, global = true, env = "SBCTL_CERT")]
    pub cert: Option<PathBuf>,
    /// Client key.
    #[arg(long, global = true, env = "SBCTL_KEY")]
    pub key: Option<PathBuf>,
    /// Bearer token instead of a client certificate.
    #[arg(long, global = true, env = "SBCTL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The cluster id, for TLS names (default: from --cluster's file).
    #[arg(long, global = true)]
    pub cluster_id: Option<String>,
    /// Talk plaintext to sites run with insecure = true.
    #[arg(long, global = true)]
    pub insecure: bool,
    /// Give up on a command after this many seconds.
    #[arg(long, global = true, default_value_t = 15)]
    pub timeout_secs: u64,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Ask every site for its view: role, leader, term, log, commit and applied index.
    Status,
    /// Form a new cluster of the sites named by --endpoints or --cluster:
    /// each is asked for its id, addresses and labels, and all become the
    /// first voters. Once, on sites started with empty data dirs.
    Init,
    /// Relays.
    #[command(subcommand)]
    Relay(RelayCommand),
    /// VPN hosts.
    #[command(subcommand)]
    Host(HostCommand),
    /// Routes.
    #[command(subcommand)]
    Route(RouteCommand),
    /// Cluster membership.
    #[command(subcommand)]
    Members(MembersCommand),
    /// Leadership.
    #[command(subcommand)]
    Leader(LeaderCommand),
    /// Certificates for a cluster (no cluster needed).
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Tokens for remote-access clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Fetch the signed node-info document, check its signature, and show it.
    Nodeinfo {
        /// Keep the verified document in this cache file (as clients do).
        #[arg(long)]
        cache: Option<PathBuf>,
    },
    /// The service notice carried in node info.
    #[command(subcommand)]
    Notice(NoticeCommand),
    /// Node-info signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Sites in and out of client service.
    #[command(subcommand)]
    Site(SiteCommand),
    /// Maintenance windows, carried out by the leader.
    #[command(subcommand)]
    Maintenance(MaintenanceCommand),
    /// Backups of the whole state, and restoring one.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Failure domains whose loss would cost quorum or relay capacity.
    #[command(subcommand)]
    Topology(TopologyCommand),
    /// Admin actions: who, what, when, and the result (newest first).
    Audit {
        /// Show at most this many records (0: all kept).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum SiteCommand {
    /// Take a site out of client service: leadership moves away, node info
    /// marks it in maintenance, it redirects clients; it keeps voting.
    Drain {
        site_id: u64,
        /// Drain even if losing the site afterwards would cost quorum.
        #[arg(long)]
        force: bool,
    },
    /// Put a site back into client service.
    Undrain { site_id: u64 },
}

#[derive(Subcommand, Debug)]
pub enum MaintenanceCommand {
    /// Schedule a window: at its start the leader drains the target, at its
    /// end it puts it back.
    Schedule {
        /// relay:ID or site:ID.
        #[arg(long)]
        target: String,
        /// RFC 3339 time (2026-11-25T22:00:00Z), "now", or "+DURATION" (+10m).
        #[arg(long)]
        start: String,
        /// As --start, or "+DURATION" after the start.
        #[arg(long)]
        end: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List windows: scheduled, active and the recently finished.
    List,
    /// Cancel a window: a scheduled one never starts, an active one ends now.
    Cancel { window_id: u64 },
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Save every acknowledged write to FILE (written whole, then renamed).
    Save { file: PathBuf },
    /// Replace the cluster's state with a backup's; node info enters a new era.
    Restore {
        file: PathBuf,
        /// Confirms replacing the current routes, relays and windows.
        #[arg(long)]
        yes_replace_state: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TopologyCommand {
    /// List every single domain (label value) whose loss costs quorum or
    /// more than --capacity-share of relay capacity; exit 1 if any does.
    Check {
        /// Share of in-service relay capacity a domain may hold, 0 to 1.
        #[arg(long, default_value_t = 0.5)]
        capacity_share: f64,
        /// Show every domain, not only the critical ones.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum NoticeCommand {
    /// Set the notice every site hands out with node info.
    Set { text: String },
    /// Clear it.
    Clear,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Make a new signing key, endorsed by the current one.
    Rotate,
}

#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Make a development CA, a token key and certificates in DIR.
    Init {
        dir: PathBuf,
        #[arg(long)]
        cluster_id: String,
        /// Site certificates for ids 1..=N.
        #[arg(long, default_value_t = 3)]
        sites: u64,
        /// A relay certificate; repeatable.
        #[arg(long = "relay")]
        relays: Vec<String>,
        #[arg(long, default_value = "operator")]
        admin: String,
        #[arg(long, default_value = "portal")]
        client: String,
    },
    /// Issue one more certificate from DIR's CA.
    Issue {
        dir: PathBuf,
        #[arg(long)]
        cluster_id: String,
        /// site, relay, admin or client.
        #[arg(long)]
        role: String,
        #[arg(long)]
        id: String,
        #[arg(long, default_value_t = 365)]
        days: i64,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Issue a bearer token for a remote-access client.
    Token {
        name: String,
        #[arg(long, default_value_t = 30)]
        ttl_days: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum RelayCommand {
    /// Register a relay (or update one that restarted).
    Register {
        relay_id: String,
        /// host:port where hosts and clients reach the relay.
        #[arg(long)]
        endpoint: String,
        /// Most hosts it may carry.
        #[arg(long)]
        capacity: u32,
        #[arg(long, default_value = "")]
        region: String,
        /// Failure-domain label, key=value; repeatable.
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        #[arg(long, default_value_t = 1)]
        incarnation: u64,
    },
    /// List relays.
    List,
    /// Move a relay's hosts to others at a pace; it takes no new hosts.
    /// Every host keeps a route throughout and is told through its watch.
    Drain {
        relay_id: String,
        /// Hosts moved per second.
        #[arg(long, default_value_t = 100)]
        rate: u32,
        /// After this long ("30m") or at this RFC 3339 time, what is left moves at once.
        #[arg(long)]
        deadline: Option<String>,
        /// Show progress (hosts left, rate, ETA) until the relay is drained.
        #[arg(long)]
        wait: bool,
        /// Drain even if the other relays lack room for every host.
        #[arg(long)]
        force: bool,
    },
    /// Put a relay back into placement.
    Undrain { relay_id: String },
    /// Forget a relay that holds no route (drain it first); its certificate is refused from then on.
    Remove { relay_id: String },
}

#[derive(Subcommand, Debug)]
pub enum HostCommand {
    /// Give a host a route (placing it on a relay).
    Attach {
        host_id: String,
        #[arg(long, default_value = "")]
        region: String,
    },
    /// Remove a host's route.
    Detach { host_id: String },
    /// Issue the host's credential: a token that lets it act as itself only.
    Enroll {
        host_id: String,
        #[arg(long, default_value_t = 365)]
        ttl_days: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum RouteCommand {
    /// Which relay carries a host.
    Get {
        host_id: String,
        /// Read through the leader's read index instead of the site's local state.
        #[arg(long)]
        linearizable: bool,
        /// For a local read: refuse a site staler than this.
        #[arg(long, default_value_t = 0)]
        max_stale_ms: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum MembersCommand {
    /// List members as the leader sees them.
    List,
    /// Add a site as a learner (it catches up, but does not vote).
    AddLearner {
        #[arg(long)]
        id: u64,
        #[arg(long)]
        name: String,
        #[arg(long)]
        raft: String,
        #[arg(long)]
        api: String,
        #[arg(long)]
        http: String,
        /// A failure-domain label, key=value (repeat for more). Default:
        /// the labels the new site's own config gives it.
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// Wait, showing progress, until the learner has caught up.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds.
        #[arg(long, default_value_t = 3600)]
        wait_secs: u64,
    },
    /// Make a learner a voter.
    Promote {
        site_id: u64,
        /// Promote even if the quorum would then hang on an unhealthy site.
        #[arg(long)]
        force: bool,
    },
    /// Remove a site from the cluster.
    Remove {
        site_id: u64,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum LeaderCommand {
    /// Hand leadership to another voter.
    Transfer {
        /// The site to lead (default: the most caught-up other voter).
        #[arg(long)]
        to: Option<u64>,
        /// Hand over even to a site whose loss would then cost quorum.
        #[arg(long)]
        force: bool,
    },
}

/// A `key=value` label from the command line.
fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() && !value.is_empty() => {
            Ok((key.to_owned(), value.to_owned()))
        }
        _ => Err(format!("{text:?} is not key=value")),
    }
}
