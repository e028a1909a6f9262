//! sbctl's commands and flags.

use std::path::PathBuf;

use clap::Args;
use clap::Parser;
use clap::Subcommand;

#[derive(Parser, Debug)]
#[command(name = "sbctl", version, about = "Operate a Switchboard cluster")]
pub struct Cli {
    #[command(flatten)]
    pub target: Target,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
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
    /// Give up on a command after this many seconds.
    #[arg(long, global = true, default_value_t = 15)]
    pub timeout_secs: u64,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Ask every site for its view: role, leader, term, log, commit and applied index.
    Status,
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
        /// Wait, showing progress, until the learner has caught up.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds.
        #[arg(long, default_value_t = 3600)]
        wait_secs: u64,
    },
    /// Make a learner a voter.
    Promote { site_id: u64 },
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
    },
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?} is not key=value"))
}
